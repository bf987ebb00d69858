"""The exceptions, and how a failed RPC becomes one."""

import grpc
from google.protobuf.message import DecodeError

from ._pb import rpc_pb2

try:  # An app that has cryptography catches our InvalidToken as its own.
    from cryptography.fernet import InvalidToken as _InvalidTokenBase
except ImportError:  # pragma: no cover - exercised only without cryptography

    class _InvalidTokenBase(Exception):
        pass


# The reasons the sidecar gives: Go's package reasons (reasons/reasons.go),
# held equal to these by client/python_reasons_test.go.
MALFORMED = "MALFORMED"
INVALID_SIGNATURE = "INVALID_SIGNATURE"
EXPIRED = "EXPIRED"
FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
TOKEN_TOO_LARGE = "TOKEN_TOO_LARGE"
PLAINTEXT_TOO_LARGE = "PLAINTEXT_TOO_LARGE"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
INTERNAL = "INTERNAL"
INVALID_TOTP_PARAMETER = "INVALID_TOTP_PARAMETER"
INVALID_TOTP_SECRET = "INVALID_TOTP_SECRET"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
TOO_MANY_BATCHES = "TOO_MANY_BATCHES"
TOO_MANY_CALLS = "TOO_MANY_CALLS"

#: The reasons a token is refused for: these raise InvalidToken.
TOKEN_REASONS = frozenset({MALFORMED, INVALID_SIGNATURE, EXPIRED, FUTURE_TIMESTAMP, TOKEN_TOO_LARGE})

ERROR_DOMAIN = "fernet-sidecar"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


class InvalidToken(_InvalidTokenBase):
    """The token does not decrypt: the sidecar refused it.

    A subclass of ``cryptography.fernet.InvalidToken`` when cryptography is
    importable, so ``except cryptography.fernet.InvalidToken`` catches it.
    ``reason`` says which rule failed (MALFORMED, INVALID_SIGNATURE,
    EXPIRED, FUTURE_TIMESTAMP or TOKEN_TOO_LARGE); the message never holds
    the token, the plaintext or a key.
    """

    def __init__(self, message="", reason=None):
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self):
        return (type(self), (self.message, self.reason))


class SidecarError(Exception):
    """A failure that is not about the token: the sidecar failed, is down,
    or refused input over one of its limits.

    ``code`` is the grpc.StatusCode of the failed call (None for a batch
    item's error), ``reason`` the sidecar's reason when it gave one
    (PLAINTEXT_TOO_LARGE, BATCH_TOO_LARGE, INVALID_TOTP_PARAMETER,
    INVALID_TOTP_SECRET, METHOD_NOT_ALLOWED, TOO_MANY_BATCHES, TOO_MANY_CALLS,
    INTERNAL), else None.
    """

    def __init__(self, message="", code=None, reason=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.message, self.code, self.reason))


class SidecarUnavailable(SidecarError):
    """The sidecar could not be reached (UNAVAILABLE, after the retries) or
    did not answer within the timeout (DEADLINE_EXCEEDED)."""


def from_rpc_error(err):
    """The exception for a failed RPC (a grpc.RpcError that is a grpc.Call)."""
    code = err.code() if callable(getattr(err, "code", None)) else None
    message = (err.details() if callable(getattr(err, "details", None)) else None) or str(code)
    reason = _reason(err)
    if reason in TOKEN_REASONS:
        return InvalidToken(message, reason)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return SidecarUnavailable(message, code, reason)
    return SidecarError(message, code, reason)


def from_item_error(item):
    """The exception for one failed batch item (an ItemError message)."""
    if item.reason in TOKEN_REASONS:
        return InvalidToken(item.message, item.reason)
    return SidecarError(item.message, None, item.reason)


def _reason(err):
    """The ErrorInfo reason in the call's status details, or None."""
    try:
        metadata = err.trailing_metadata() or ()
    except Exception:  # not a grpc.Call
        return None
    for key, value in metadata:
        if key == _STATUS_DETAILS_KEY:
            try:
                return _error_info_reason(value)
            except DecodeError:
                return None
    return None


def _error_info_reason(status_bytes):
    """The reason of the first ErrorInfo in our domain in a serialized
    google.rpc.Status, read with rpc_pb2's wire-identical copies of
    google.rpc's messages (see client/python/proto/fernet_sidecar/rpc.proto
    for why they are not google.rpc's own)."""
    for detail in rpc_pb2.Status.FromString(status_bytes).details:
        if detail.type_url != _ERROR_INFO_TYPE:
            continue
        info = rpc_pb2.ErrorInfo.FromString(detail.value)
        if info.domain == ERROR_DOMAIN and info.reason:
            return info.reason
    return None
