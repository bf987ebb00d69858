"""The example with Debian's Django and django-otp, through the real
sidecar, held to Python's Fernet and pyotp."""

import base64
import binascii
import io
import os
import time

import pyotp
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TestCase
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from examples.totp_django.models import SidecarTOTPDevice


def primary():
    return Fernet(os.environ["SIDECAR_TEST_PRIMARY_KEY"])


def wrong_code(otp):
    return next(c for c in ("000000", "111111", "222222", "333333") if not otp.verify(c, valid_window=2))


class EnrolTest(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("alice", password="correct horse")

    def test_enrol_and_confirm(self):
        device, uri = SidecarTOTPDevice.enrol(self.user)
        self.assertFalse(device.confirmed)
        otp = pyotp.parse_uri(uri)
        self.assertEqual((otp.name, otp.issuer), ("alice", "Example"))
        # The database holds a token, which Python's Fernet opens to the
        # URI's secret with the key; the app itself has only the token.
        stored = SidecarTOTPDevice.objects.get(pk=device.pk).token
        self.assertNotIn(otp.secret, stored)
        self.assertEqual(primary().decrypt(stored.encode()).decode(), otp.secret)

        self.assertFalse(device.confirm(wrong_code(otp)))
        self.assertFalse(SidecarTOTPDevice.objects.get(pk=device.pk).confirmed)
        code = otp.now()
        self.assertTrue(device.confirm(code))
        device.refresh_from_db()
        self.assertTrue(device.confirmed)
        self.assertGreater(device.last_t, 0)
        self.assertEqual(device.throttling_failure_count, 0)
        # The same code again is refused: it was used.
        self.assertFalse(device.verify_token(code))


class LoginTest(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("bob", password="correct horse")
        self.device, uri = SidecarTOTPDevice.enrol(self.user)
        self.otp = pyotp.parse_uri(uri)
        self.confirmed_with = self.otp.now()
        self.assertTrue(self.device.confirm(self.confirmed_with))

    def login(self, code):
        return self.client.post("/login/", {"username": "bob", "password": "correct horse", "otp_token": code})

    def test_login_with_the_next_code(self):
        # The next step's code: the step may turn during the test, and the
        # window takes one step either side.
        response = self.login(self.otp.at(time.time() + 30))
        self.assertEqual(response.status_code, 302, response.content)
        self.assertEqual(self.client.session[DEVICE_ID_SESSION_KEY], self.device.persistent_id)

    def test_wrong_or_replayed_code_refused(self):
        response = self.login(wrong_code(self.otp))
        self.assertEqual(response.status_code, 200)
        self.assertNotIn(DEVICE_ID_SESSION_KEY, self.client.session)
        self.device.refresh_from_db()
        self.assertEqual(self.device.throttling_failure_count, 1)
        # The code that confirmed the device cannot log in.
        response = self.login(self.confirmed_with)
        self.assertEqual(response.status_code, 200)
        self.assertNotIn(DEVICE_ID_SESSION_KEY, self.client.session)


    def test_two_logins_with_the_same_code_pass_once(self):
        # Both requests read the device before either verifies the code.
        first = SidecarTOTPDevice.objects.get(pk=self.device.pk)
        second = SidecarTOTPDevice.objects.get(pk=self.device.pk)
        code = self.otp.at(time.time() + 30)
        self.assertTrue(first.verify_token(code))
        self.assertFalse(second.verify_token(code))
        self.device.refresh_from_db()
        self.assertEqual(self.device.last_t, first.last_t)
        self.assertEqual(self.device.throttling_failure_count, 1)


class ImportTest(TestCase):
    def test_import_totp_devices(self):
        user = User.objects.create_user("carol")
        key = "3132333435363738393031323334353637383930"
        TOTPDevice.objects.create(user=user, name="phone", key=key, last_t=1234, tolerance=1, drift=2)
        skipped = TOTPDevice.objects.create(user=user, name="odd", t0=100)

        out = io.StringIO()
        call_command("import_totp_devices", "--batch-size", "1", stdout=out)
        self.assertIn("moved 1 TOTP devices", out.getvalue())

        self.assertEqual(list(TOTPDevice.objects.all()), [skipped])
        device = SidecarTOTPDevice.objects.get(user=user)
        self.assertEqual((device.name, device.encoding, device.last_t, device.tolerance), ("phone", "hex", 1234, 2))
        self.assertEqual(primary().decrypt(device.token.encode()).decode(), key)
        otp = pyotp.TOTP(base64.b32encode(binascii.unhexlify(key)).decode())
        self.assertTrue(device.verify_token(otp.now()))


class MigrationsTest(TestCase):
    def test_migrations_match_the_model(self):
        call_command("makemigrations", "totp_django", "--check", "--dry-run", stdout=io.StringIO())
