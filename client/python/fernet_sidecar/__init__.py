"""Python client of fernet-sidecar: cryptography.fernet's calls, done by the
sidecar beside the app, with byte-for-byte the same tokens.

    from fernet_sidecar import SidecarFernet, InvalidToken

    f = SidecarFernet("127.0.0.1:50051")        # or "unix:///run/fernet/fernet.sock"
    token = f.encrypt(b"JBSWY3DPEHPK3PXP")
    try:
        secret = f.decrypt(token, ttl=3600)
    except InvalidToken as e:                   # is a cryptography.fernet.InvalidToken
        print("bad token:", e.reason)           # MALFORMED, INVALID_SIGNATURE, EXPIRED, ...

See docs/clients.md in the fernet-sidecar repository.
"""

from ._calls import (
    INVALID_CODE,
    REPLAYED,
    VALID,
    Decrypted,
    Inspected,
    Limits,
    Status,
    TOTPEnrolment,
    TOTPVerification,
)
from ._client import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_ITEMS,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    SidecarFernet,
)
from ._errors import (
    BATCH_TOO_LARGE,
    ERROR_DOMAIN,
    EXPIRED,
    FUTURE_TIMESTAMP,
    INTERNAL,
    INVALID_SIGNATURE,
    INVALID_TOTP_PARAMETER,
    INVALID_TOTP_SECRET,
    MALFORMED,
    METHOD_NOT_ALLOWED,
    PLAINTEXT_TOO_LARGE,
    TOKEN_REASONS,
    TOKEN_TOO_LARGE,
    TOO_MANY_BATCHES,
    TOO_MANY_CALLS,
    InvalidToken,
    SidecarError,
    SidecarUnavailable,
)
from ._legacy import LEGACY_SHAPES


def __getattr__(name):
    # InProcessFernet needs cryptography, which the sidecar client does not.
    if name == "InProcessFernet":
        from ._inprocess import InProcessFernet

        return InProcessFernet
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = [
    "SidecarFernet",
    "InProcessFernet",
    "LEGACY_SHAPES",
    "Decrypted",
    "Status",
    "Limits",
    "Inspected",
    "TOTPEnrolment",
    "TOTPVerification",
    "VALID",
    "INVALID_CODE",
    "REPLAYED",
    "InvalidToken",
    "SidecarError",
    "SidecarUnavailable",
    "MALFORMED",
    "INVALID_SIGNATURE",
    "EXPIRED",
    "FUTURE_TIMESTAMP",
    "TOKEN_TOO_LARGE",
    "PLAINTEXT_TOO_LARGE",
    "BATCH_TOO_LARGE",
    "INVALID_TOTP_PARAMETER",
    "INVALID_TOTP_SECRET",
    "METHOD_NOT_ALLOWED",
    "TOO_MANY_BATCHES",
    "TOO_MANY_CALLS",
    "INTERNAL",
    "TOKEN_REASONS",
    "ERROR_DOMAIN",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_BATCH_ITEMS",
    "DEFAULT_MAX_BATCH_BYTES",
]
