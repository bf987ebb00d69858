"""AsyncSidecarFernet: SidecarFernet's calls as coroutines, on grpc.aio.

    from fernet_sidecar.aio import AsyncSidecarFernet

    f = AsyncSidecarFernet("unix:///run/fernet/fernet.sock")
    token = await f.encrypt(b"JBSWY3DPEHPK3PXP")
    secret = await f.decrypt(token, ttl=3600)
    await f.close()

Many tasks of one event loop share the client's one channel: a thousand
concurrent decrypts are a thousand RPCs in flight on one connection, with no
thread per call.
"""

import asyncio
from typing import Optional, Union

import grpc
import grpc.aio

from . import _calls, _errors
from ._calls import Decrypted, Inspected, Status, TOTPEnrolment, TOTPVerification
from ._client import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_ITEMS,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    _channel_options,
    _check_target,
    _check_timeout,
)
from ._pb import fernet_pb2_grpc as pb_grpc

__all__ = ["AsyncSidecarFernet"]


class AsyncSidecarFernet:
    """SidecarFernet for asyncio: the same methods, parameters, errors,
    deadlines, retries and batching, each method a coroutine.

    A grpc.aio channel belongs to the event loop it was made in. This client
    makes its channel on its first call, in the loop running that call, and
    then refuses calls from any other loop (RuntimeError): make one client
    per event loop (an ASGI server has one loop per worker process), after
    any fork.

    :param channel: a grpc.aio.Channel to use instead of making one (this
        client then does not own it: close() leaves it open, and each call
        carries the timeout).

    The other parameters are SidecarFernet's.
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
        channel: Optional[grpc.aio.Channel] = None,
    ):
        _check_timeout(timeout)
        # As SidecarFernet: the timeout rides in the service config of a
        # channel made here, and on each call over a channel given to us.
        self._call_timeout = timeout if channel is not None else None
        self._wait_for_ready = wait_for_ready
        self._max_batch_items = max_batch_items
        self._max_batch_bytes = max_batch_bytes
        self._owns_channel = channel is None
        self._closed = False
        self._loop = None
        self._channel = channel
        self._stub = None if channel is None else pb_grpc.FernetServiceStub(channel)
        if channel is None:
            _check_target(target)
            self._target = target
            self._credentials = credentials
            self._options = _channel_options(max_attempts, timeout, max_batch_bytes)

    # -- the calls of cryptography.fernet ----------------------------------

    async def encrypt(self, data: bytes) -> bytes:
        """A new token of data under the sidecar's primary key."""
        return await self._unary(_calls.encrypt(data))

    async def decrypt(self, token: Union[bytes, str], ttl: Optional[int] = None) -> bytes:
        """The plaintext of token, as MultiFernet(keys).decrypt(token, ttl)."""
        return (await self.decrypt_info(token, ttl)).plaintext

    async def decrypt_info(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Decrypted:
        """decrypt, with the key id, the timestamp and needs_reencrypt."""
        return await self._unary(_calls.decrypt_info(token, ttl))

    async def rotate(self, msg: Union[bytes, str]) -> bytes:
        """msg under the primary key with its timestamp, as MultiFernet.rotate;
        a canonical token already under the primary comes back as it was."""
        return await self._unary(_calls.rotate(msg))

    async def extract_timestamp(self, token: Union[bytes, str]) -> int:
        """The token's timestamp; the token must verify under a loaded key."""
        return (await self.decrypt_info(token)).timestamp

    # -- bulk work ---------------------------------------------------------

    async def encrypt_many(self, items, *, return_exceptions: bool = False) -> list:
        """encrypt of each item, in order, in as few RPCs as the limits allow."""
        return await self._many(_calls.encrypt_many(items, return_exceptions))

    async def decrypt_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        """decrypt of each token with one ttl, in order."""
        return await self._many(_calls.decrypt_many(tokens, ttl, return_exceptions))

    async def rotate_many(self, tokens, *, return_exceptions: bool = False) -> list:
        """rotate of each token, in order."""
        return await self._many(_calls.rotate_many(tokens, return_exceptions))

    # -- checks that return no plaintext ------------------------------------

    async def inspect(self, token: Union[bytes, str], ttl: Optional[int] = None) -> Inspected:
        """decrypt_info without the plaintext."""
        return await self._unary(_calls.inspect(token, ttl))

    async def inspect_many(self, tokens, ttl: Optional[int] = None, *, return_exceptions: bool = False) -> list:
        """inspect of each token with one ttl, in order."""
        return await self._many(_calls.inspect_many(tokens, ttl, return_exceptions))

    # -- TOTP, with the secret kept in the sidecar ---------------------------

    async def create_totp(
        self,
        account_name: str,
        issuer: str = "",
        *,
        digits: int = 6,
        period: int = 30,
        algorithm: str = "SHA1",
        secret_bytes: int = 20,
    ) -> TOTPEnrolment:
        """A fresh TOTP secret, as a token and a provisioning URI."""
        return await self._unary(_calls.create_totp(account_name, issuer, digits, period, algorithm, secret_bytes))

    async def verify_totp(
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
        """Checks code against the TOTP secret in token."""
        return await self._unary(_calls.verify_totp(token, code, last_counter, window, digits, period, algorithm, encoding))

    # -- the rest ----------------------------------------------------------

    async def status(self) -> Status:
        """The sidecar's key ids (never keys), version, the methods it serves
        and its limits."""
        return await self._unary(_calls.status())

    async def close(self) -> None:
        """Closes the channel (if this client made it); calls in flight are
        cancelled."""
        if self._closed:
            return
        self._closed = True
        if self._owns_channel and self._channel is not None:
            await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.close()

    # -- plumbing ----------------------------------------------------------

    def _stub_here(self):
        """The stub, made with its channel in the running loop on first use."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise ValueError("AsyncSidecarFernet is closed")
        if self._stub is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(self._target, self._credentials, options=self._options)
            self._stub = pb_grpc.FernetServiceStub(self._channel)
            self._loop = loop
        elif self._owns_channel and loop is not self._loop:
            raise RuntimeError(
                "AsyncSidecarFernet is bound to the event loop of its first call "
                "(a grpc.aio channel cannot move between loops): make one client per loop"
            )
        return self._stub

    # SidecarFernet's _unary, _many and _rpc, with each RPC awaited.

    async def _unary(self, call):
        return call.result(await self._rpc(call.method, call.request))

    async def _many(self, batch):
        values = []
        for chunk in batch.chunks(self._max_batch_items, self._max_batch_bytes):
            response = await self._rpc(batch.method, batch.request(chunk))
            values += batch.values(chunk, response, start=len(values))
        return values

    async def _rpc(self, method, request):
        rpc = getattr(self._stub_here(), method)
        try:
            return await rpc(request, timeout=self._call_timeout, wait_for_ready=self._wait_for_ready)
        except grpc.RpcError as err:
            raise _errors.from_rpc_error(err) from err
