"""AsyncSidecarFernet against the real sidecar: test_client's tests, run on
the asyncio client, and what only the asyncio client has."""

import asyncio
import inspect
import unittest

import grpc.aio
from cryptography.fernet import Fernet

from fernet_sidecar import InvalidToken
from fernet_sidecar.aio import AsyncSidecarFernet

from . import env, test_client, test_totp

# The loop that the synchronous tests drive the asyncio client in.
loop = None


def setUpModule():
    global loop
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # grpc.aio channels made outside a coroutine bind to it


def tearDownModule():
    asyncio.set_event_loop(None)
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


class Synchronous:
    """An AsyncSidecarFernet whose coroutines run to completion when
    called, so that test_client's tests hold it to what SidecarFernet does."""

    def __init__(self, *args, channel=None, **kwargs):
        self.aio = AsyncSidecarFernet(*args, channel=channel and channel.aio, **kwargs)

    def __getattr__(self, name):
        attr = getattr(self.aio, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        return lambda *args, **kwargs: loop.run_until_complete(attr(*args, **kwargs))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class AioChannel:
    """A grpc.aio channel for test_client's given-channel test."""

    def __init__(self, target):
        self.aio = grpc.aio.insecure_channel(target)

    def close(self):
        loop.run_until_complete(self.aio.close())


class AsyncTransport(test_client.Transport):
    Client = Synchronous

    # One loop and no threads: test_concurrent_calls_share_one_channel instead.
    test_one_channel_shared_by_threads = None

    def test_concurrent_calls_share_one_channel(self):
        f = self.f.aio
        tokens = [self.primary.encrypt(b"%d" % i) for i in range(300)]
        channel = f._channel

        async def all_at_once():
            return await asyncio.gather(*(f.decrypt(t) for t in tokens), f.decrypt(b"garbage"), return_exceptions=True)

        results = loop.run_until_complete(all_at_once())
        self.assertEqual(results[:-1], [b"%d" % i for i in range(300)])
        self.assertIsInstance(results[-1], InvalidToken)
        self.assertIs(f._channel, channel)


class AioTCPTest(AsyncTransport, unittest.TestCase):
    target_var = "TCP_TARGET"


class AioUnixSocketTest(AsyncTransport, unittest.TestCase):
    target_var = "UNIX_TARGET"


class AioTLSTest(test_client.TLSTest):
    Client = Synchronous


class AioInspectAndTOTPTest(test_totp.InspectAndTOTPTest):
    Client = Synchronous


class AioSidecarDownTest(test_client.SidecarDownTest):
    Client = Synchronous
    channel = AioChannel


class EventLoopTest(unittest.TestCase):
    """What a grpc.aio channel's tie to its event loop means for the client."""

    def setUp(self):
        self.target = env.get("TCP_TARGET")
        self.primary = Fernet(env.get("PRIMARY_KEY"))

    def test_made_outside_a_loop_used_in_asyncio_run(self):
        f = AsyncSidecarFernet(self.target)  # no channel yet: made by the first call

        async def main():
            try:
                return await f.decrypt(self.primary.encrypt(b"x"))
            finally:
                await f.close()

        self.assertEqual(asyncio.run(main()), b"x")

    def test_another_loop_is_refused(self):
        f = AsyncSidecarFernet(self.target)
        token = self.primary.encrypt(b"x")
        first = asyncio.new_event_loop()
        self.addCleanup(first.close)
        self.assertEqual(first.run_until_complete(f.decrypt(token)), b"x")
        with self.assertRaisesRegex(RuntimeError, "one client per loop"):
            asyncio.run(f.decrypt(token))
        first.run_until_complete(f.close())
        with self.assertRaisesRegex(ValueError, "closed"):
            first.run_until_complete(f.decrypt(token))

    def test_given_channel_stays_open(self):
        async def main():
            async with grpc.aio.insecure_channel(self.target) as channel:
                async with AsyncSidecarFernet(channel=channel, timeout=10) as f:
                    self.assertEqual(await f.decrypt(self.primary.encrypt(b"x")), b"x")
                # The client closed, the channel is still the caller's to use.
                async with AsyncSidecarFernet(channel=channel) as again:
                    return await again.status()

        self.assertTrue(asyncio.run(main()).primary_key_id)

    def test_close_cancels_calls_in_flight(self):
        # grpc.aio cancels a closing channel's calls, as asyncio cancels a task.
        async def main():
            f = AsyncSidecarFernet(self.target, max_batch_items=8)
            await f.status()
            pending = asyncio.ensure_future(f.decrypt_many([self.primary.encrypt(b"x")] * 2000))  # 250 RPCs
            await asyncio.sleep(0)
            await f.close()
            return await asyncio.gather(pending, return_exceptions=True)

        (result,) = asyncio.run(main())
        self.assertIsInstance(result, asyncio.CancelledError)


if __name__ == "__main__":
    unittest.main()
