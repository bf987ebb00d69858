"""SidecarFernet: cryptography.fernet's calls, served by fernet-sidecar."""

import json
import math
import threading
from typing import List, NamedTuple, Optional, Tuple, Union

import grpc

from . import _errors
from ._pb import fernet_pb2 as pb
from ._pb import fernet_pb2_grpc as pb_grpc

# Where the sidecar binds by default, as fernetctl's --sidecar default.
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_BATCH_ITEMS = 1000
DEFAULT_MAX_BATCH_BYTES = 2 << 20

_SERVICE = "fernet.v1.FernetService"
_MAX_RECEIVE_BYTES = 32 << 20
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


# grpcio starts a service-config timeout from a clock that runs 1 to 2 s
# behind the call's own (grpc/grpc#34547, still open in 1.74): the config
# asks for this much more, so that no call fails before its timeout.
_SERVICE_CONFIG_CLOCK_LAG = 2.0


def _service_config(max_attempts, timeout):
    method = {"name": [{"service": _SERVICE}]}
    if max_attempts >= 2:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    if timeout is not None:
        method["timeout"] = "%.9fs" % (timeout + _SERVICE_CONFIG_CLOCK_LAG)
    return {"methodConfig": [method]}


def _check_timeout(timeout):
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds or None")
    if not 0 < timeout < math.inf:
        raise ValueError("timeout must be more than 0 seconds, and finite (None for no deadline)")


def _check_target(target):
    if not isinstance(target, str):
        raise TypeError("target must be a str")
    if target.startswith("unix:"):
        if not target.startswith("unix:///"):
            raise ValueError("target %r: want unix:///absolute/path" % target)
        return
    if not target or "://" in target or ":" not in target:
        raise ValueError("target %r: want host:port or unix:///path" % target)


class SidecarFernet:
    """A drop-in for cryptography.fernet.Fernet and MultiFernet in the calls
    apps make (encrypt, decrypt, rotate, extract_timestamp), done by the
    fernet-sidecar at ``target`` with the keys it holds.

    A token that does not decrypt raises :class:`InvalidToken`, which is a
    ``cryptography.fernet.InvalidToken``. Anything else that fails (the
    sidecar is down, too slow, or refuses input over its limits) raises
    :class:`SidecarError` (:class:`SidecarUnavailable` when it is down or
    the timeout passed), never InvalidToken.

    One instance holds one gRPC channel, reused by every call and safe to
    share between threads. Make it once per process, after any fork.

    :param target: "host:port" or "unix:///path/to/socket".
    :param timeout: seconds each RPC may take; None for no deadline. A call
        still unanswered fails with SidecarUnavailable after the timeout, at
        most 1 s later (the channel's service config carries it; see
        docs/clients.md).
    :param max_attempts: tries of an RPC that fails with UNAVAILABLE, the
        first included (1 turns retries off; gRPC allows at most 5). No
        other failure is retried.
    :param wait_for_ready: wait, up to the timeout, for a sidecar that is
        not up yet instead of failing at once.
    :param max_batch_items, max_batch_bytes: the *_many helpers split their
        input into RPCs of at most this many items and payload bytes.
    :param credentials: grpc.ssl_channel_credentials(...) for a sidecar
        started with --tls-cert-file; without them the channel is plaintext,
        as the sidecar serves it on the loopback or a Unix socket.
    :param channel: a grpc.Channel to use instead of making one from target
        (this instance then does not own it: close() leaves it open).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        wait_for_ready: bool = False,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        credentials: Optional[grpc.ChannelCredentials] = None,
        channel: Optional[grpc.Channel] = None,
    ):
        _check_timeout(timeout)
        # With grpcio 1.51 a per-call timeout added 8 to 21% to a call's
        # latency on the development VM; a timeout in the service config
        # added nothing measurable. So the channel made here carries it, and
        # only a channel given by the caller gets it per call.
        self._call_timeout = timeout if channel is not None else None
        self._wait_for_ready = wait_for_ready
        self._max_batch_items = max_batch_items
        self._max_batch_bytes = max_batch_bytes
        self._owns_channel = channel is None
        if channel is None:
            _check_target(target)
            options = _channel_options(max_attempts, timeout, max_batch_bytes)
            if credentials is None:
                channel = grpc.insecure_channel(target, options=options)
            else:
                channel = grpc.secure_channel(target, credentials, options=options)
        self._channel = channel
        self._stub = pb_grpc.FernetServiceStub(channel)
        self._closed = threading.Event()

    # -- the calls of cryptography.fernet ----------------------------------

    def encrypt(self, data: bytes) -> bytes:
        """A new token of data under the sidecar's primary key, as
        Fernet(primary).encrypt."""
        _check_data(data)
        resp = self._call(self._stub.Encrypt, pb.EncryptRequest(plaintext=data))
        return resp.token.encode("ascii")

    def decrypt(self, token: Union[bytes, str], ttl: Optional[int] = None) -> bytes:
        """The plaintext of token, as MultiFernet(keys).decrypt(token, ttl).

        With ttl (seconds), a token older than ttl or more than 60 s in the
        future is refused; without it no time is checked.
        """
        return self.decrypt_info(token, ttl).plaintext

    def decrypt_info(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Decrypted:
        """decrypt, and also which key verified the token, its timestamp, and
        whether it needs re-encrypting under the primary key."""
        return _decrypted(self._call(self._stub.Decrypt, _with_ttl(pb.DecryptRequest(token=_token_str(token)), ttl)))

    def rotate(self, msg: Union[bytes, str]) -> bytes:
        """msg re-encrypted under the primary key with its original
        timestamp, as MultiFernet.rotate. No TTL is checked. A canonical
        token already under the primary key comes back as it was: compare
        to skip writes that change nothing."""
        resp = self._call(self._stub.ReEncrypt, pb.ReEncryptRequest(token=_token_str(msg)))
        return resp.token.encode("ascii")

    def extract_timestamp(self, token: Union[bytes, str]) -> int:
        """The token's timestamp, as Fernet.extract_timestamp: the token must
        verify under one of the keys, and no time is checked."""
        return self.decrypt_info(token).timestamp

    # -- bulk work ---------------------------------------------------------

    def encrypt_many(self, items, *, return_exceptions: bool = False) -> list:
        """encrypt of each item, in order, in as few RPCs as the limits allow.

        An item that fails raises its exception, or, with
        return_exceptions=True, is returned in its place (a SidecarError
        with reason PLAINTEXT_TOO_LARGE) while the others go on.
        """
        items = list(items)
        for data in items:
            _check_data(data)
        return self._many(
            items,
            len,
            lambda chunk: self._call(self._stub.EncryptBatch, pb.EncryptBatchRequest(plaintexts=chunk)),
            lambda ok: ok.token.encode("ascii"),
            return_exceptions,
        )

    def decrypt_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        """decrypt of each token with one ttl, in order. A bad token raises
        InvalidToken, or with return_exceptions=True is returned in its place
        (an InvalidToken instance) while the others go on."""
        tokens = [_token_str(t) for t in tokens]
        _ttl_seconds(ttl)  # a bad ttl fails before any RPC, even with no tokens

        def call(chunk):
            return self._call(self._stub.DecryptBatch, _with_ttl(pb.DecryptBatchRequest(tokens=chunk), ttl))

        return self._many(tokens, len, call, lambda ok: ok.plaintext, return_exceptions)

    def rotate_many(self, tokens, *, return_exceptions: bool = False) -> list:
        """rotate of each token, in order; errors as decrypt_many. An item
        equal to its input needs no write."""
        tokens = [_token_str(t) for t in tokens]
        return self._many(
            tokens,
            len,
            lambda chunk: self._call(self._stub.ReEncryptBatch, pb.ReEncryptBatchRequest(tokens=chunk)),
            lambda ok: ok.token.encode("ascii"),
            return_exceptions,
        )

    # -- checks that return no plaintext ------------------------------------

    def inspect(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Inspected:
        """decrypt_info without the plaintext: which key verifies the token,
        its timestamp and whether it needs re-encrypting. A bad token raises
        InvalidToken, as decrypt."""
        return _inspected(self._call(self._stub.Inspect, _with_ttl(pb.InspectRequest(token=_token_str(token)), ttl)))

    def inspect_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        """inspect of each token with one ttl, in order; errors as
        decrypt_many. What a rotation check needs, with no plaintext sent."""
        tokens = [_token_str(t) for t in tokens]
        _ttl_seconds(ttl)  # a bad ttl fails before any RPC, even with no tokens

        def call(chunk):
            return self._call(self._stub.InspectBatch, _with_ttl(pb.InspectBatchRequest(tokens=chunk), ttl))

        return self._many(tokens, len, call, _inspected, return_exceptions)

    # -- TOTP, with the secret kept in the sidecar ---------------------------

    def create_totp(
        self,
        account_name: str,
        issuer: str = "",
        *,
        digits: int = 6,
        period: int = 30,
        algorithm: str = "SHA1",
        secret_bytes: int = 20,
    ) -> TOTPEnrolment:
        """A fresh TOTP secret, returned only as a token (to store) and in
        the provisioning URI (to show once as a QR code)."""
        req = _create_totp_request(account_name, issuer, digits, period, algorithm, secret_bytes)
        return _totp_enrolment(self._call(self._stub.CreateTOTP, req))

    def verify_totp(
        self,
        token: Union[bytes, str],
        code: str,
        last_counter: Optional[int] = None,
        *,
        window: int = 1,
        digits: int = 6,
        period: int = 30,
        algorithm: str = "SHA1",
        encoding: str = "base32",
    ) -> TOTPVerification:
        """Checks code against the TOTP secret in token, which never leaves
        the sidecar. A wrong code is an outcome (INVALID_CODE), not an
        exception; a token that does not decrypt raises InvalidToken.

        :param last_counter: TOTPVerification.counter of this secret's last
            VALID code; a code of that step or an earlier one is REPLAYED.
        :param window: time steps accepted either side of now (0 to 10).
        :param encoding: "base32" (pyotp, Google Authenticator) or "hex"
            (django-otp's TOTPDevice.key).
        """
        req = _verify_totp_request(token, code, last_counter, window, digits, period, algorithm, encoding)
        return _totp_verification(self._call(self._stub.VerifyTOTP, req))

    # -- the rest ----------------------------------------------------------

    def status(self) -> Status:
        """The sidecar's key ids (never keys), version, the methods it serves
        and its limits."""
        return _status(self._call(self._stub.GetStatus, pb.GetStatusRequest()))

    def close(self) -> None:
        """Closes the channel (if this instance made it)."""
        if not self._closed.is_set():
            self._closed.set()
            if self._owns_channel:
                self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- plumbing ----------------------------------------------------------

    def _call(self, method, request):
        try:
            return method(request, timeout=self._call_timeout, wait_for_ready=self._wait_for_ready)
        except grpc.RpcError as err:
            raise _errors.from_rpc_error(err) from err

    def _many(self, items, size, call, ok_value, return_exceptions):
        out = []
        for chunk in _chunks(items, size, self._max_batch_items, self._max_batch_bytes):
            _collect(out, chunk, call(chunk).results, ok_value, return_exceptions)
        return out


def _channel_options(max_attempts, timeout, max_batch_bytes):
    """The options of a channel made by a client (sync or asyncio)."""
    max_attempts = min(max_attempts, 5)
    return [
        ("grpc.service_config", json.dumps(_service_config(max_attempts, timeout))),
        # Ignore any service config the resolver might supply: the
        # retry policy and the timeout are ours.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1 if max_attempts >= 2 else 0),
        ("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES),
        # Let a whole batch RPC be buffered, so that it can be retried.
        ("grpc.per_rpc_retry_buffer_size", max(256 << 10, max_batch_bytes + max_batch_bytes // 2)),
    ]


def _collect(out, chunk, results, ok_value, return_exceptions):
    """Appends to out the values of one batch RPC's results for chunk; an
    item's error is raised, or appended with return_exceptions."""
    if len(results) != len(chunk):
        raise _errors.SidecarError("batch response has %d results for %d items" % (len(results), len(chunk)))
    for index, result in enumerate(results, start=len(out)):
        if result.WhichOneof("result") == "ok":
            out.append(ok_value(result.ok))
            continue
        exc = _errors.from_item_error(result.error)
        exc.index = index
        if not return_exceptions:
            raise exc
        out.append(exc)


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


def _create_totp_request(account_name, issuer, digits, period, algorithm, secret_bytes):
    return pb.CreateTOTPRequest(
        account_name=account_name,
        issuer=issuer,
        digits=digits,
        period_seconds=period,
        algorithm=_totp_algorithm(algorithm),
        secret_bytes=secret_bytes,
    )


def _totp_enrolment(resp):
    return TOTPEnrolment(resp.token.encode("ascii"), resp.key_id, resp.provisioning_uri)


def _verify_totp_request(token, code, last_counter, window, digits, period, algorithm, encoding):
    if encoding not in _TOTP_ENCODINGS:
        raise ValueError("encoding must be 'base32' or 'hex'")
    req = pb.VerifyTOTPRequest(
        token=_token_str(token),
        code=code,
        window=window,
        digits=digits,
        period_seconds=period,
        algorithm=_totp_algorithm(algorithm),
        encoding=_TOTP_ENCODINGS[encoding],
    )
    if last_counter is not None:
        req.last_counter = last_counter
    return req


def _totp_verification(resp):
    return TOTPVerification(
        _TOTP_OUTCOMES.get(resp.outcome, str(resp.outcome)), resp.counter, resp.drift, resp.key_id, resp.needs_reencrypt
    )


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


def _chunks(items, size, max_items, max_bytes):
    """items in runs of at most max_items items and max_bytes bytes; an
    item over max_bytes is a run of its own. A limit <= 0 does not apply."""
    start = total = 0
    for i, item in enumerate(items):
        n = size(item)
        full = max_items > 0 and i - start >= max_items
        too_big = max_bytes > 0 and i > start and total + n > max_bytes
        if full or too_big:
            yield items[start:i]
            start, total = i, 0
        total += n
    if start < len(items):
        yield items[start:]
