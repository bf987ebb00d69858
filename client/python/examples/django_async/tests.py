"""The example's async views against the real sidecar (FERNET_SIDECAR_TARGET,
as settings.py says, and its primary key in SIDECAR_TEST_PRIMARY_KEY;
client/django_async_test.go sets them), through Django's ASGI request
handler."""

import asyncio
import logging
import time

from cryptography.fernet import Fernet
from django.test import AsyncClient, SimpleTestCase, override_settings

from tests import env

from . import views


class AsyncViewsTest(SimpleTestCase):
    def setUp(self):
        self.primary = Fernet(env.get("PRIMARY_KEY"))
        self.http = AsyncClient()
        quiet = logging.getLogger("django.request")  # it warns of the 400s and 503s
        self.addCleanup(quiet.setLevel, quiet.level)
        quiet.setLevel(logging.CRITICAL)

    async def open(self, token):
        response = await self.http.post("/open", {"token": token}, content_type="application/json")
        return response.status_code, response.json()

    async def test_seal_then_open(self):
        try:
            response = await self.http.post("/seal", b"JBSWY3DPEHPK3PXP", content_type="application/octet-stream")
            self.assertEqual(response.status_code, 201)
            token = response.json()["token"]
            self.assertEqual(self.primary.decrypt(token.encode()), b"JBSWY3DPEHPK3PXP")
            self.assertEqual(await self.open(token), (200, {"secret": "JBSWY3DPEHPK3PXP"}))
        finally:
            await views.close()

    async def test_concurrent_requests_share_the_loops_client(self):
        tokens = [self.primary.encrypt(b"secret %d" % i).decode() for i in range(20)]
        try:
            got = await asyncio.gather(*(self.open(t) for t in tokens))
            self.assertEqual(len(views._clients), 1)
        finally:
            await views.close()
        self.assertEqual(got, [(200, {"secret": "secret %d" % i}) for i in range(20)])

    async def test_refused_tokens_are_400_with_the_reason(self):
        cases = {
            "gAAAAA-not-a-token": "MALFORMED",
            Fernet(Fernet.generate_key()).encrypt(b"x").decode(): "INVALID_SIGNATURE",
            self.primary.encrypt_at_time(b"x", int(time.time()) - 7200).decode(): "EXPIRED",  # ttl is an hour
        }
        try:
            for token, reason in cases.items():
                self.assertEqual(await self.open(token), (400, {"error": "invalid token", "reason": reason}))
        finally:
            await views.close()

    @override_settings(FERNET_SIDECAR={"TARGET": "unix:///nonexistent/fernet.sock", "TIMEOUT": 2.0})
    async def test_sidecar_down_is_503(self):
        try:
            self.assertEqual(await self.open(self.primary.encrypt(b"x").decode()), (503, {"error": "encryption service unavailable"}))
        finally:
            await views.close()
