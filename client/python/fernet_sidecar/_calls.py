"""The calls of SidecarFernet and AsyncSidecarFernet, with no I/O: what each
one sends, its arguments checked first as cryptography.fernet checks them,
and what the sidecar's reply becomes. The two clients differ only in how
they wait for the sidecar, one blocking and one awaiting (the "sans-I/O"
way of sharing a protocol between sync and async code)."""

import math
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from . import _errors
from ._pb import fernet_pb2 as pb

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class Decrypted(NamedTuple):
    """What a token holds, from SidecarFernet.decrypt_info."""

    plaintext: bytes
    #: id of the key that verified the token
    key_id: str
    #: the token's creation time, Unix seconds (as extract_timestamp)
    timestamp: int
    #: True when an old key made the token: rotate() moves it to the primary
    needs_reencrypt: bool


class Inspected(NamedTuple):
    """What decrypt_info tells about a token, less the plaintext: from
    SidecarFernet.inspect and inspect_many."""

    #: id of the key that verified the token
    key_id: str
    #: the token's creation time, Unix seconds
    timestamp: int
    #: True when an old key made the token: rotate() moves it to the primary
    needs_reencrypt: bool


class Limits(NamedTuple):
    """The sidecar's bounds on one call (Status.limits)."""

    max_plaintext_bytes: int
    max_token_bytes: int
    max_batch_items: int
    max_message_bytes: int


class Status(NamedTuple):
    primary_key_id: str
    decrypt_only_key_ids: List[str]
    version: str
    #: the FernetService methods the sidecar serves (--allow-methods)
    allowed_methods: Tuple[str, ...] = ()
    limits: Optional[Limits] = None


# The outcomes of verify_totp (TOTPVerification.outcome).
VALID = "VALID"
INVALID_CODE = "INVALID_CODE"
REPLAYED = "REPLAYED"

_TOTP_OUTCOMES = {
    pb.TOTP_OUTCOME_VALID: VALID,
    pb.TOTP_OUTCOME_INVALID_CODE: INVALID_CODE,
    pb.TOTP_OUTCOME_REPLAYED: REPLAYED,
}
_TOTP_ALGORITHMS = {
    "SHA1": pb.TOTP_ALGORITHM_SHA1,
    "SHA256": pb.TOTP_ALGORITHM_SHA256,
    "SHA512": pb.TOTP_ALGORITHM_SHA512,
}
_TOTP_ENCODINGS = {"base32": pb.TOTP_SECRET_ENCODING_BASE32, "hex": pb.TOTP_SECRET_ENCODING_HEX}


class TOTPEnrolment(NamedTuple):
    """A new TOTP secret, from SidecarFernet.create_totp."""

    #: the secret (its base32 text) under the primary key: store it as the
    #: app stores TOTP secrets
    token: bytes
    #: id of the primary key, which made the token
    key_id: str
    #: the otpauth://totp/ URI to show once as a QR code; it holds the
    #: secret in the clear, so never store or log it
    provisioning_uri: str


class TOTPVerification(NamedTuple):
    """What SidecarFernet.verify_totp made of a code."""

    #: VALID, INVALID_CODE or REPLAYED
    outcome: str
    #: the time step the code matched (0 with INVALID_CODE): after VALID,
    #: store it and pass it as last_counter next time
    counter: int
    #: the matched step minus the current one
    drift: int
    #: id of the key that verified the token
    key_id: str
    #: True when an old key made the token: rotate() moves it to the primary
    needs_reencrypt: bool

    @property
    def valid(self) -> bool:
        return self.outcome == VALID


# -- what a client does with a call -------------------------------------------


class Unary(NamedTuple):
    """One RPC: the FernetService method, its request, and what makes the
    client's return value of the response."""

    method: str
    request: Any
    result: Callable[[Any], Any]


class Batch(NamedTuple):
    """A *_many call: its items go in chunks, each chunk in an RPC of its
    own to method with request(chunk)."""

    method: str
    items: list
    request: Callable[[list], Any]
    #: makes an item's value of its result's ok
    ok_value: Callable[[Any], Any]
    return_exceptions: bool

    def chunks(self, max_items, max_bytes):
        """The items in runs of at most max_items items and max_bytes bytes;
        an item over max_bytes is a run of its own. A limit <= 0 does not
        apply."""
        items = self.items
        start = total = 0
        for i, item in enumerate(items):
            n = len(item)
            full = max_items > 0 and i - start >= max_items
            too_big = max_bytes > 0 and i > start and total + n > max_bytes
            if full or too_big:
                yield items[start:i]
                start, total = i, 0
            total += n
        if start < len(items):
            yield items[start:]

    def values(self, chunk, response, start):
        """The values of chunk's items from the response to its RPC; start
        is the index of chunk's first item among all the items. An item's
        error is raised, or with return_exceptions is its value."""
        results = response.results
        if len(results) != len(chunk):
            raise _errors.SidecarError("batch response has %d results for %d items" % (len(results), len(chunk)))
        values = []
        for index, result in enumerate(results, start=start):
            if result.WhichOneof("result") == "ok":
                values.append(self.ok_value(result.ok))
                continue
            exc = _errors.from_item_error(result.error)
            exc.index = index
            if not self.return_exceptions:
                raise exc
            values.append(exc)
        return values


# -- the calls, by the client method that makes them ------------------------


def encrypt(data):
    _check_data(data)
    return Unary("Encrypt", pb.EncryptRequest(plaintext=data), _token_bytes)


def decrypt_info(token, ttl):
    return Unary("Decrypt", _with_ttl(pb.DecryptRequest(token=_token_str(token)), ttl), _decrypted)


def rotate(msg):
    return Unary("ReEncrypt", pb.ReEncryptRequest(token=_token_str(msg)), _token_bytes)


def inspect(token, ttl):
    return Unary("Inspect", _with_ttl(pb.InspectRequest(token=_token_str(token)), ttl), _inspected)


def encrypt_many(items, return_exceptions):
    items = list(items)
    for data in items:
        _check_data(data)
    return Batch("EncryptBatch", items, lambda chunk: pb.EncryptBatchRequest(plaintexts=chunk), _token_bytes, return_exceptions)


def decrypt_many(tokens, ttl, return_exceptions):
    return _token_batch("DecryptBatch", pb.DecryptBatchRequest, tokens, ttl, _plaintext, return_exceptions)


def rotate_many(tokens, return_exceptions):
    return _token_batch("ReEncryptBatch", pb.ReEncryptBatchRequest, tokens, None, _token_bytes, return_exceptions)


def inspect_many(tokens, ttl, return_exceptions):
    return _token_batch("InspectBatch", pb.InspectBatchRequest, tokens, ttl, _inspected, return_exceptions)


def _token_batch(method, request_type, tokens, ttl, ok_value, return_exceptions):
    """A *_many call on tokens, with ttl (None for none) in each request."""
    tokens = [_token_str(t) for t in tokens]
    _ttl_seconds(ttl)  # a bad ttl fails before any RPC, even with no tokens
    return Batch(method, tokens, lambda chunk: _with_ttl(request_type(tokens=chunk), ttl), ok_value, return_exceptions)


def create_totp(account_name, issuer, digits, period, algorithm, secret_bytes):
    request = pb.CreateTOTPRequest(
        account_name=account_name,
        issuer=issuer,
        digits=digits,
        period_seconds=period,
        algorithm=_totp_algorithm(algorithm),
        secret_bytes=secret_bytes,
    )
    return Unary("CreateTOTP", request, _totp_enrolment)


def verify_totp(token, code, last_counter, window, digits, period, algorithm, encoding):
    if encoding not in _TOTP_ENCODINGS:
        raise ValueError("encoding must be 'base32' or 'hex'")
    request = pb.VerifyTOTPRequest(
        token=_token_str(token),
        code=code,
        window=window,
        digits=digits,
        period_seconds=period,
        algorithm=_totp_algorithm(algorithm),
        encoding=_TOTP_ENCODINGS[encoding],
    )
    if last_counter is not None:
        request.last_counter = last_counter
    return Unary("VerifyTOTP", request, _totp_verification)


def status():
    return Unary("GetStatus", pb.GetStatusRequest(), _status)


# -- replies ------------------------------------------------------------------


def _token_bytes(resp):
    return resp.token.encode("ascii")


def _plaintext(resp):
    return resp.plaintext


def _decrypted(resp):
    return Decrypted(resp.plaintext, resp.key_id, resp.timestamp, resp.needs_reencrypt)


def _inspected(resp):
    return Inspected(resp.key_id, resp.timestamp, resp.needs_reencrypt)


def _status(resp):
    limits = resp.limits
    return Status(
        resp.primary_key_id,
        list(resp.decrypt_only_key_ids),
        resp.version,
        tuple(resp.allowed_methods),
        Limits(limits.max_plaintext_bytes, limits.max_token_bytes, limits.max_batch_items, limits.max_message_bytes),
    )


def _totp_enrolment(resp):
    return TOTPEnrolment(resp.token.encode("ascii"), resp.key_id, resp.provisioning_uri)


def _totp_verification(resp):
    return TOTPVerification(
        _TOTP_OUTCOMES.get(resp.outcome, str(resp.outcome)), resp.counter, resp.drift, resp.key_id, resp.needs_reencrypt
    )


# -- arguments, as cryptography.fernet takes them ----------------------------


def _totp_algorithm(name):
    try:
        return _TOTP_ALGORITHMS[name.upper()]
    except (KeyError, AttributeError):
        raise ValueError("algorithm must be SHA1, SHA256 or SHA512") from None


def _check_data(data):
    # As cryptography's utils._check_bytes.
    if not isinstance(data, bytes):
        raise TypeError("data must be bytes")


def _token_str(token):
    """token as the proto's string, with Python's treatment of input that
    is not ASCII."""
    if isinstance(token, str):
        try:
            token.encode("ascii")
        except UnicodeEncodeError:
            # As base64.urlsafe_b64decode, which Fernet lets escape.
            raise ValueError("string argument should contain only ASCII characters") from None
        return token
    if isinstance(token, bytes):
        # Python's base64 decoder skips bytes outside the alphabet, the
        # non-ASCII ones included; the sidecar skips the ASCII ones.
        return token.decode("ascii", "ignore")
    raise TypeError("token must be bytes or str")


def _with_ttl(req, ttl):
    """req with the ttl_seconds of ttl, if any."""
    seconds = _ttl_seconds(ttl)
    if seconds is not None:
        req.ttl_seconds = seconds
    return req


def _ttl_seconds(ttl):
    """ttl as the whole seconds the sidecar takes. Python checks
    timestamp + ttl < now with whole-second timestamp and now, which gives
    the same verdict for ttl as for floor(ttl); beyond int64, a ttl gives
    the same verdict as the nearest int64."""
    if ttl is None:
        return None
    if isinstance(ttl, float):
        if math.isnan(ttl) or ttl == math.inf:  # never expires
            return _I64_MAX
        if ttl == -math.inf:
            return _I64_MIN
        ttl = math.floor(ttl)
    elif not isinstance(ttl, int):
        raise TypeError("ttl must be an int or None, not %s" % type(ttl).__name__)
    return max(_I64_MIN, min(_I64_MAX, int(ttl)))
