"""InProcessFernet: SidecarFernet's calls done by cryptography.fernet in the
app's own process, for app test suites and local development.

The plaintexts and tokens are Python's own (MultiFernet's), and the
failures are the sidecar's: InvalidToken with the reason the sidecar would
give, where Python can tell it. TOTP follows the sidecar's totp package and
server (totp/totp.go, server/createtotp.go, server/verifytotp.go) rule for
rule, on the standard library.
"""

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import time
from typing import List, Optional, Sequence, Union
from urllib.parse import quote

import grpc
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as _PythonInvalidToken

from . import _calls, _errors
from ._calls import Decrypted, Inspected, Status, TOTPEnrolment, TOTPVerification, _token_str, _ttl_seconds
from ._pb import fernet_pb2 as pb

#: The Status.version of an in-process backend.
IN_PROCESS_VERSION = "in-process"

# Python's Fernet allows a token this far in the future when a ttl is given.
_MAX_CLOCK_SKEW = 60

# Version, timestamp and IV come before the ciphertext; one AES block of
# ciphertext and the HMAC-SHA256 make the shortest token.
_CIPHERTEXT_START = 1 + 8 + 16
_MIN_TOKEN_BYTES = _CIPHERTEXT_START + 16 + 32

# The sidecar's fixed text per reason (package reasons): a message never
# holds any part of the input.
_MESSAGES = {
    _errors.MALFORMED: "not a Fernet token",
    _errors.INVALID_SIGNATURE: "no loaded key verifies the token",
    _errors.EXPIRED: "the token is older than the TTL",
    _errors.FUTURE_TIMESTAMP: "the token's timestamp is in the future",
    _errors.INVALID_TOTP_PARAMETER: "a TOTP parameter is out of range (digits, period, algorithm or secret encoding)",
    _errors.INVALID_TOTP_SECRET: "the token does not hold a TOTP secret",
}

# The totp package's bounds and defaults (totp/totp.go).
_DIGITS = range(6, 8 + 1)
_PERIOD_SECONDS = range(1, 3600 + 1)
_WINDOW = range(0, 10 + 1)
_SECRET_BYTES = range(16, 64 + 1)
_MAX_LABEL_BYTES = 256
_DEFAULT_DIGITS, _DEFAULT_PERIOD_SECONDS, _DEFAULT_SECRET_BYTES = 6, 30, 20

_TOTP_HASHES = {
    pb.TOTP_ALGORITHM_UNSPECIFIED: ("SHA1", hashlib.sha1),
    pb.TOTP_ALGORITHM_SHA1: ("SHA1", hashlib.sha1),
    pb.TOTP_ALGORITHM_SHA256: ("SHA256", hashlib.sha256),
    pb.TOTP_ALGORITHM_SHA512: ("SHA512", hashlib.sha512),
}
_BASE32_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def key_id(key: Union[bytes, str]) -> str:
    """The sidecar's id of a Fernet key: lowercase hex of the first 8 bytes
    of SHA-256 over the 32 raw key bytes."""
    return hashlib.sha256(_raw_key(key)).hexdigest()[:16]


def _raw_key(key):
    if not isinstance(key, (bytes, str)):
        raise TypeError("a Fernet key must be bytes or str")
    try:
        raw = base64.urlsafe_b64decode(key)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # The key itself is never echoed.
        raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes")
    return raw


class _Key:
    __slots__ = ("fernet", "id")

    def __init__(self, key):
        self.id = key_id(key)
        self.fernet = Fernet(key)


class InProcessFernet:
    """SidecarFernet's methods on cryptography.fernet in this process.

    :param keys: Fernet keys, primary first, as MultiFernet takes them; the
        primary encrypts, every key decrypts. A key listed twice is kept only
        at its first place, as the sidecar does.
    """

    def __init__(self, keys: Sequence[Union[bytes, str]]):
        if isinstance(keys, (bytes, str)):
            raise TypeError("keys must be a list of Fernet keys, primary first")
        loaded: List[_Key] = []
        for key in keys:
            k = _Key(key)
            if all(k.id != other.id for other in loaded):
                loaded.append(k)
        if not loaded:
            raise ValueError("the in-process backend needs at least one key")
        self._keys = loaded

    # -- the calls of cryptography.fernet ----------------------------------

    def encrypt(self, data: bytes) -> bytes:
        return self._keys[0].fernet.encrypt(data)

    def decrypt(self, token: Union[bytes, str], ttl: Optional[int] = None) -> bytes:
        return self.decrypt_info(token, ttl).plaintext

    def decrypt_info(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Decrypted:
        return self._decrypt(token, _ttl_seconds(ttl), "decrypt")

    def _decrypt(self, token, ttl, operation):
        for index, key in enumerate(self._keys):
            try:
                plaintext = key.fernet.decrypt(token, ttl)
            except _PythonInvalidToken:
                continue
            timestamp = Fernet._get_unverified_token_data(token)[0]
            return Decrypted(plaintext, key.id, timestamp, index != 0)
        raise self._invalid(token, ttl, operation)

    def rotate(self, msg: Union[bytes, str]) -> bytes:
        info = self._decrypt(msg, None, "reencrypt")
        if not info.needs_reencrypt and _is_canonical(msg):
            return msg.encode("ascii") if isinstance(msg, str) else msg
        return self._keys[0].fernet._encrypt_from_parts(info.plaintext, info.timestamp, os.urandom(16))

    def extract_timestamp(self, token: Union[bytes, str]) -> int:
        return self.decrypt_info(token).timestamp

    # -- bulk work ---------------------------------------------------------

    def encrypt_many(self, items, *, return_exceptions: bool = False) -> list:
        # return_exceptions is SidecarFernet's: no plaintext fails here.
        items = list(items)
        for data in items:
            if not isinstance(data, bytes):
                raise TypeError("data must be bytes")
        return [self.encrypt(data) for data in items]

    def decrypt_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        tokens = _checked_tokens(tokens, ttl)
        return _each(tokens, lambda token: self.decrypt(token, ttl), return_exceptions)

    def rotate_many(self, tokens, *, return_exceptions: bool = False) -> list:
        return _each(_checked_tokens(tokens, None), self.rotate, return_exceptions)

    # -- checks that return no plaintext ------------------------------------

    def inspect(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Inspected:
        _token_str(token)
        return self._inspect(token, _ttl_seconds(ttl))

    def inspect_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        tokens = _checked_tokens(tokens, ttl)
        seconds = _ttl_seconds(ttl)
        return _each(tokens, lambda token: self._inspect(token, seconds), return_exceptions)

    def _inspect(self, token, ttl_seconds):
        info = self._decrypt(token, ttl_seconds, "inspect")
        return Inspected(info.key_id, info.timestamp, info.needs_reencrypt)

    # -- TOTP ----------------------------------------------------------------
    #
    # The arguments go through the request SidecarFernet would send, so they
    # are checked (and their zero values mean the defaults) exactly as
    # there, protobuf's own checks included; the request is then served as
    # the sidecar serves it.

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
        req = _calls.create_totp(account_name, issuer, digits, period, algorithm, secret_bytes).request
        params = _totp_params(req.digits, req.period_seconds, req.algorithm, "create_totp")
        account, issuer = req.account_name, req.issuer
        if (
            not account
            or len(account.encode()) > _MAX_LABEL_BYTES
            or len(issuer.encode()) > _MAX_LABEL_BYTES
            or ":" in account
            or ":" in issuer
        ):
            raise _totp_error(_errors.INVALID_TOTP_PARAMETER, "create_totp")
        size = req.secret_bytes or _DEFAULT_SECRET_BYTES
        if size not in _SECRET_BYTES:
            raise _totp_error(_errors.INVALID_TOTP_PARAMETER, "create_totp")
        # The token holds the base32 text, as apps that use pyotp store it.
        text = base64.b32encode(secrets.token_bytes(size)).rstrip(b"=")
        return TOTPEnrolment(self.encrypt(text), self._keys[0].id, _provisioning_uri(params, account, issuer, text.decode()))

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
        req = _calls.verify_totp(token, code, last_counter, window, digits, period, algorithm, encoding).request
        params = _totp_params(req.digits, req.period_seconds, req.algorithm, "verify_totp")
        # The sidecar decrypts with no TTL (a secret is kept for years),
        # then decodes the secret, then checks the window.
        info = self._decrypt(token, None, "verify_totp")
        decode = _decode_hex if req.encoding == pb.TOTP_SECRET_ENCODING_HEX else _decode_base32
        secret = decode(info.plaintext)
        if secret is None:
            raise _totp_error(_errors.INVALID_TOTP_SECRET, "verify_totp")
        # An unset window (window=None) is the sidecar's default, 1.
        window = req.window if req.HasField("window") else 1
        if window not in _WINDOW:
            raise _totp_error(_errors.INVALID_TOTP_PARAMETER, "verify_totp")
        last = req.last_counter if req.HasField("last_counter") else None
        outcome, counter, drift = _verify(params, secret, req.code.encode(), int(time.time()), window, last)
        return TOTPVerification(outcome, counter, drift, info.key_id, info.needs_reencrypt)

    # -- the rest ----------------------------------------------------------

    def status(self) -> Status:
        return Status(self._keys[0].id, [k.id for k in self._keys[1:]], IN_PROCESS_VERSION)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- plumbing ----------------------------------------------------------

    def _invalid(self, token, ttl, operation):
        """The InvalidToken for a token no key decrypts, with the reason and
        message the sidecar gives: it checks the signature before the time,
        where Python checks the time first."""
        reason = self._reason(token, ttl)
        return _errors.InvalidToken("%s: %s" % (operation, _MESSAGES[reason]), reason)

    def _reason(self, token, ttl):
        try:
            timestamp, data = Fernet._get_unverified_token_data(token)
        except _PythonInvalidToken:
            return _errors.MALFORMED
        # The sidecar refuses these shapes before it checks any signature.
        if len(data) < _MIN_TOKEN_BYTES or (len(data) - _CIPHERTEXT_START - 32) % 16:
            return _errors.MALFORMED
        if not any(_verifies(key.fernet, data) for key in self._keys):
            return _errors.INVALID_SIGNATURE
        if ttl is not None:
            now = int(time.time())
            if timestamp + ttl < now:
                return _errors.EXPIRED
            if now + _MAX_CLOCK_SKEW < timestamp:
                return _errors.FUTURE_TIMESTAMP
        # Signed by a key, but the ciphertext does not decrypt under it.
        return _errors.MALFORMED


class _TOTPParams:
    __slots__ = ("digits", "period", "algorithm", "hash")

    def __init__(self, digits, period, algorithm, hash):
        self.digits, self.period, self.algorithm, self.hash = digits, period, algorithm, hash

    def code(self, secret, counter):
        """The code of secret at counter (RFC 4226 section 5.3)."""
        digest = hmac.new(secret, struct.pack(">Q", counter), self.hash).digest()
        offset = digest[-1] & 0xF
        value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
        return b"%0*d" % (self.digits, value % 10**self.digits)


def _totp_params(digits, period_seconds, algorithm, operation):
    """The parameters of a TOTP request, zero values meaning the defaults."""
    digits = digits or _DEFAULT_DIGITS
    period = period_seconds or _DEFAULT_PERIOD_SECONDS
    if digits not in _DIGITS or period not in _PERIOD_SECONDS or algorithm not in _TOTP_HASHES:
        raise _totp_error(_errors.INVALID_TOTP_PARAMETER, operation)
    return _TOTPParams(digits, period, *_TOTP_HASHES[algorithm])


def _totp_error(reason, operation):
    # The sidecar's status for bad TOTP input is INVALID_ARGUMENT.
    return _errors.SidecarError("%s: %s" % (operation, _MESSAGES[reason]), grpc.StatusCode.INVALID_ARGUMENT, reason)


def _verify(params, secret, code, now, window, last_counter):
    """Every step of the window is compared, each in constant time. Of the
    steps that match, the earliest one after last_counter wins (VALID); a
    code that matches only used steps is REPLAYED, at the earliest."""
    current = now // params.period
    result = (_calls.INVALID_CODE, 0, 0)
    for drift in range(-window, window + 1):
        counter = current + drift
        if counter < 0:  # before the Unix epoch
            continue
        matches = hmac.compare_digest(code, params.code(secret, counter))
        used = last_counter is not None and counter <= last_counter
        if not matches or result[0] == _calls.VALID:
            continue
        if not used:
            result = (_calls.VALID, counter, drift)
        elif result[0] == _calls.INVALID_CODE:
            result = (_calls.REPLAYED, counter, drift)
    return result


def _decode_base32(text):
    """The secret of base32 text as the sidecar reads it (totp.DecodeBase32):
    padded or not, in any case, with spaces anywhere; a last group of 1, 3
    or 6 characters is refused, as Python's b32decode refuses it. None if it
    does not decode, or decodes to nothing."""
    symbols = text.replace(b" ", b"").upper().rstrip(b"=")
    if len(symbols) % 8 in (1, 3, 6) or not _BASE32_ALPHABET.issuperset(symbols):
        return None
    return base64.b32decode(symbols + b"=" * (-len(symbols) % 8)) or None


def _decode_hex(text):
    """The secret of hexadecimal text (django-otp's TOTPDevice.key), as
    Go's hex.Decode reads it: no whitespace, either case. None if it does
    not decode, or decodes to nothing."""
    try:
        return binascii.unhexlify(text) or None
    except (binascii.Error, ValueError):
        return None


def _provisioning_uri(params, account, issuer, secret):
    """The otpauth:// URI as the sidecar (and pyotp) writes it: the
    parameters in pyotp's order, only those that differ from the defaults,
    everything but the unreserved characters percent-encoded."""
    label = quote(account, safe="")
    if issuer:
        label = quote(issuer, safe="") + ":" + label
    uri = "otpauth://totp/%s?secret=%s" % (label, secret)
    if issuer:
        uri += "&issuer=" + quote(issuer, safe="")
    if params.algorithm != "SHA1":
        uri += "&algorithm=" + params.algorithm
    if params.digits != _DEFAULT_DIGITS:
        uri += "&digits=%d" % params.digits
    if params.period != _DEFAULT_PERIOD_SECONDS:
        uri += "&period=%d" % params.period
    return uri


def _verifies(fernet, data):
    try:
        fernet._verify_signature(data)
    except _PythonInvalidToken:
        return False
    return True


def _is_canonical(token):
    raw = token.encode("ascii") if isinstance(token, str) else token
    try:
        return base64.urlsafe_b64encode(base64.urlsafe_b64decode(raw)) == raw
    except (binascii.Error, ValueError):
        return False


def _checked_tokens(tokens, ttl):
    """tokens as a list, each token and then ttl checked before any is
    worked on, in the order of SidecarFernet's checks."""
    tokens = list(tokens)
    for token in tokens:
        _token_str(token)
    _ttl_seconds(ttl)
    return tokens


def _each(items, call, return_exceptions):
    out = []
    for index, item in enumerate(items):
        try:
            out.append(call(item))
        except _errors.InvalidToken as exc:
            exc.index = index
            # Its traceback keeps this frame, whose locals error reporters
            # send: they must not hold the other items' plaintexts.
            if not return_exceptions:
                out = None
                raise
            out.append(exc.with_traceback(None))
    return out
