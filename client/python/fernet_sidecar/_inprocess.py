"""InProcessFernet: SidecarFernet's calls done by cryptography.fernet in the
app's own process, for app test suites and local development.

The plaintexts and tokens are Python's own (MultiFernet's), and the
failures are the sidecar's: InvalidToken with the reason the sidecar would
give, where Python can tell it.
"""

import base64
import binascii
import hashlib
import os
import time
from typing import List, Optional, Sequence, Union

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as _PythonInvalidToken

from . import _errors
from ._calls import Decrypted, Status

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
}


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
        return self._decrypt(token, ttl, "decrypt")

    def _decrypt(self, token, ttl, operation):
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
            raise TypeError("ttl must be an int or None, not %s" % type(ttl).__name__)
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
        return _each(list(tokens), lambda token: self.decrypt(token, ttl), return_exceptions)

    def rotate_many(self, tokens, *, return_exceptions: bool = False) -> list:
        return _each(list(tokens), self.rotate, return_exceptions)

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


def _each(items, call, return_exceptions):
    out = []
    for index, item in enumerate(items):
        try:
            out.append(call(item))
        except _errors.InvalidToken as exc:
            exc.index = index
            if not return_exceptions:
                raise
            out.append(exc)
    return out
