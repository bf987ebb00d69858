"""inspect, inspect_many, create_totp and verify_totp against the real
sidecar, held to Python's Fernet and pyotp."""

import time
import unittest

import pyotp
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as CryptographyInvalidToken

import fernet_sidecar
from fernet_sidecar import SidecarError, SidecarFernet

from . import env
from .test_client import key_id


class InspectAndTOTPTest(unittest.TestCase):
    Client = SidecarFernet  # test_aio runs these tests on the asyncio client

    @classmethod
    def setUpClass(cls):
        cls.primary_key = env.get("PRIMARY_KEY")
        cls.primary = Fernet(cls.primary_key)
        cls.old = Fernet(env.get("OLD_KEY"))
        cls.f = cls.Client(env.get("TCP_TARGET"), timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.f.close()

    def test_inspect(self):
        token = self.old.encrypt_at_time(b"secret", 1_600_000_000)
        inspected = self.f.inspect(token)
        self.assertEqual(inspected, fernet_sidecar.Inspected(key_id(env.get("OLD_KEY")), 1_600_000_000, True))
        self.assertEqual(self.f.inspect(token.decode()), inspected)
        with self.assertRaises(CryptographyInvalidToken) as caught:
            self.f.inspect(token, ttl=60)
        self.assertEqual(caught.exception.reason, fernet_sidecar.EXPIRED)

    def test_inspect_many(self):
        f = self.Client(env.get("TCP_TARGET"), max_batch_items=2)  # several RPCs
        self.addCleanup(f.close)
        now = int(time.time())
        tokens = [
            self.primary.encrypt_at_time(b"a", now),
            b"not a token",
            self.old.encrypt_at_time(b"b", now - 10),
            self.primary.encrypt_at_time(b"c", now - 3600),
            Fernet(Fernet.generate_key()).encrypt(b"d"),
        ]
        results = f.inspect_many(tokens, ttl=60, return_exceptions=True)
        self.assertEqual(results[0], fernet_sidecar.Inspected(key_id(self.primary_key), now, False))
        self.assertEqual(results[2].timestamp, now - 10)
        self.assertTrue(results[2].needs_reencrypt)
        for i, reason in [(1, fernet_sidecar.MALFORMED), (3, fernet_sidecar.EXPIRED), (4, fernet_sidecar.INVALID_SIGNATURE)]:
            self.assertIsInstance(results[i], CryptographyInvalidToken)
            self.assertEqual((results[i].reason, results[i].index), (reason, i))
        with self.assertRaises(CryptographyInvalidToken) as caught:
            f.inspect_many(tokens)
        self.assertEqual((caught.exception.reason, caught.exception.index), (fernet_sidecar.MALFORMED, 1))
        self.assertEqual(f.inspect_many([]), [])

    def test_enrol_and_log_in(self):
        enrolment = self.f.create_totp("alice@example.com", issuer="Example")
        self.assertEqual(enrolment.key_id, key_id(self.primary_key))
        # The token holds the secret as pyotp's random_base32 makes it.
        secret = self.primary.decrypt(enrolment.token).decode()
        self.assertEqual(len(secret), 32)
        otp = pyotp.parse_uri(enrolment.provisioning_uri)
        self.assertEqual((otp.secret, otp.name, otp.issuer), (secret, "alice@example.com", "Example"))

        login = self.f.verify_totp(enrolment.token, otp.now())
        self.assertTrue(login.valid)
        self.assertEqual(login.outcome, fernet_sidecar.VALID)
        self.assertIn(login.drift, (-1, 0))
        self.assertFalse(login.needs_reencrypt)
        replay = self.f.verify_totp(enrolment.token, otp.at(login.counter * 30), last_counter=login.counter)
        self.assertEqual((replay.outcome, replay.counter), (fernet_sidecar.REPLAYED, login.counter))
        self.assertFalse(replay.valid)
        wrong = next(c for c in ("000000", "111111", "222222", "333333") if not otp.verify(c, valid_window=2))
        refused = self.f.verify_totp(enrolment.token.decode(), wrong)
        self.assertEqual((refused.outcome, refused.counter), (fernet_sidecar.INVALID_CODE, 0))

    def test_existing_secrets(self):
        # A django-otp TOTPDevice.key (hex) and a pyotp secret, encrypted
        # by the app's own Fernet under the old key.
        hex_key = "3132333435363738393031323334353637383930"
        base32 = pyotp.random_base32()
        now = time.time()
        for token, encoding, code in [
            (self.old.encrypt(hex_key.encode()), "hex", pyotp.TOTP("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").at(now)),
            (self.old.encrypt(base32.lower().encode()), "base32", pyotp.TOTP(base32).at(now)),
        ]:
            result = self.f.verify_totp(token, code, encoding=encoding)
            self.assertTrue(result.valid, (encoding, result))
            self.assertTrue(result.needs_reencrypt)

    def test_parameters(self):
        enrolment = self.f.create_totp("bob", digits=8, period=60, algorithm="sha256", secret_bytes=32)
        otp = pyotp.parse_uri(enrolment.provisioning_uri)
        self.assertEqual((otp.digits, otp.interval, otp.digest().name), (8, 60, "sha256"))
        code = otp.at(time.time() - 120)
        self.assertEqual(self.f.verify_totp(enrolment.token, code, digits=8, period=60, algorithm="SHA256").outcome, fernet_sidecar.INVALID_CODE)
        self.assertTrue(self.f.verify_totp(enrolment.token, code, window=3, digits=8, period=60, algorithm="SHA256").valid)

    def test_errors(self):
        with self.assertRaises(SidecarError) as caught:
            self.f.create_totp("a:b")
        self.assertEqual(caught.exception.reason, fernet_sidecar.INVALID_TOTP_PARAMETER)
        self.assertNotIsInstance(caught.exception, CryptographyInvalidToken)
        with self.assertRaises(SidecarError) as caught:
            self.f.verify_totp(self.primary.encrypt(b"this is no secret!"), "123456")
        self.assertEqual(caught.exception.reason, fernet_sidecar.INVALID_TOTP_SECRET)
        self.assertNotIn("no secret", str(caught.exception))
        with self.assertRaises(CryptographyInvalidToken) as caught:
            self.f.verify_totp(b"not a token", "123456")
        self.assertEqual(caught.exception.reason, fernet_sidecar.MALFORMED)
        with self.assertRaises(ValueError):
            self.f.verify_totp(b"x", "123456", algorithm="MD5")
        with self.assertRaises(ValueError):
            self.f.verify_totp(b"x", "123456", encoding="base64")

    def test_status(self):
        status = self.f.status()
        self.assertIn("VerifyTOTP", status.allowed_methods)
        self.assertEqual(len(status.allowed_methods), 11)
        self.assertEqual(status.limits.max_plaintext_bytes, int(env.get("MAX_PLAINTEXT")))
        self.assertEqual(status.limits.max_batch_items, int(env.get("MAX_BATCH_ITEMS")))
        self.assertGreater(status.limits.max_token_bytes, status.limits.max_plaintext_bytes)
        self.assertGreater(status.limits.max_message_bytes, 0)
