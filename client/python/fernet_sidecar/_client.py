"""SidecarFernet: cryptography.fernet's calls, served by fernet-sidecar."""

import json
import math
import threading
from typing import Optional, Union

import grpc

from . import _calls, _errors
from ._calls import Decrypted, Inspected, Status, TOTPEnrolment, TOTPVerification
from ._pb import fernet_pb2_grpc as pb_grpc

# Where the sidecar binds by default, as fernetctl's --sidecar default.
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_BATCH_ITEMS = 1000
DEFAULT_MAX_BATCH_BYTES = 2 << 20

_SERVICE = "fernet.v1.FernetService"
_MAX_RECEIVE_BYTES = 32 << 20


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
        return self._unary(_calls.encrypt(data))

    def decrypt(self, token: Union[bytes, str], ttl: Optional[int] = None) -> bytes:
        """The plaintext of token, as MultiFernet(keys).decrypt(token, ttl).

        With ttl (seconds), a token older than ttl or more than 60 s in the
        future is refused; without it no time is checked.
        """
        return self.decrypt_info(token, ttl).plaintext

    def decrypt_info(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Decrypted:
        """decrypt, and also which key verified the token, its timestamp, and
        whether it needs re-encrypting under the primary key."""
        return self._unary(_calls.decrypt_info(token, ttl))

    def rotate(self, msg: Union[bytes, str]) -> bytes:
        """msg re-encrypted under the primary key with its original
        timestamp, as MultiFernet.rotate. No TTL is checked. A canonical
        token already under the primary key comes back as it was: compare
        to skip writes that change nothing."""
        return self._unary(_calls.rotate(msg))

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
        return self._many(_calls.encrypt_many(items, return_exceptions))

    def decrypt_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        """decrypt of each token with one ttl, in order. A bad token raises
        InvalidToken, or with return_exceptions=True is returned in its place
        (an InvalidToken instance) while the others go on."""
        return self._many(_calls.decrypt_many(tokens, ttl, return_exceptions))

    def rotate_many(self, tokens, *, return_exceptions: bool = False) -> list:
        """rotate of each token, in order; errors as decrypt_many. An item
        equal to its input needs no write."""
        return self._many(_calls.rotate_many(tokens, return_exceptions))

    # -- checks that return no plaintext ------------------------------------

    def inspect(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Inspected:
        """decrypt_info without the plaintext: which key verifies the token,
        its timestamp and whether it needs re-encrypting. A bad token raises
        InvalidToken, as decrypt."""
        return self._unary(_calls.inspect(token, ttl))

    def inspect_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        """inspect of each token with one ttl, in order; errors as
        decrypt_many. What a rotation check needs, with no plaintext sent."""
        return self._many(_calls.inspect_many(tokens, ttl, return_exceptions))

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
        return self._unary(_calls.create_totp(account_name, issuer, digits, period, algorithm, secret_bytes))

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
        return self._unary(_calls.verify_totp(token, code, last_counter, window, digits, period, algorithm, encoding))

    # -- the rest ----------------------------------------------------------

    def status(self) -> Status:
        """The sidecar's key ids (never keys), version, the methods it serves
        and its limits."""
        return self._unary(_calls.status())

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

    def _unary(self, call):
        return call.result(self._rpc(call.method, call.request))

    def _many(self, batch):
        values = []
        for chunk in batch.chunks(self._max_batch_items, self._max_batch_bytes):
            response = self._rpc(batch.method, batch.request(chunk))
            values += batch.values(chunk, response, start=len(values))
        return values

    def _rpc(self, method, request):
        try:
            return getattr(self._stub, method)(request, timeout=self._call_timeout, wait_for_ready=self._wait_for_ready)
        except grpc.RpcError as err:
            raise _errors.from_rpc_error(err) from err


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
