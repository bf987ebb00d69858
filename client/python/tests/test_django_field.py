"""examples/django_field.py with Debian's Django, on SQLite in memory (no
database server), through the real sidecar."""

import unittest

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as CryptographyInvalidToken

from . import env

try:
    import django
except ImportError:  # pragma: no cover - the Go test checks for it first
    django = None


def setUpModule():
    if django is None:
        env.missing("Django (Debian package python3-django)")
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            INSTALLED_APPS=[],
            FERNET_SIDECAR_TARGET=env.get("UNIX_TARGET"),
            FERNET_SIDECAR_TIMEOUT=10.0,
            USE_TZ=True,
        )
        django.setup()


class EncryptedTextFieldTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from django.db import connection, models

        from examples.django_field import EncryptedTextField

        class Device(models.Model):
            name = models.CharField(max_length=50)
            totp_secret = EncryptedTextField(null=True)

            class Meta:
                app_label = "fernet_sidecar_example"

        cls.Device = Device
        cls.connection = connection
        with connection.schema_editor() as editor:
            editor.create_model(Device)
        cls.primary = Fernet(env.get("PRIMARY_KEY"))
        cls.old = Fernet(env.get("OLD_KEY"))

    def raw_column(self, pk):
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT totp_secret FROM fernet_sidecar_example_device WHERE id = %s", [pk])
            return cursor.fetchone()[0]

    def test_round_trip_through_the_database(self):
        device = self.Device.objects.create(name="phone", totp_secret="JBSWY3DPEHPK3PXP")
        stored = self.raw_column(device.pk)
        self.assertNotIn("JBSWY3DPEHPK3PXP", stored)
        # What is stored is a Fernet token Python reads with the key.
        self.assertEqual(self.primary.decrypt(stored.encode()), b"JBSWY3DPEHPK3PXP")
        self.assertEqual(self.Device.objects.get(pk=device.pk).totp_secret, "JBSWY3DPEHPK3PXP")

    def test_rows_written_by_python_fernet_read(self):
        device = self.Device.objects.create(name="legacy", totp_secret=None)
        for name, fernet in [("primary", self.primary), ("old", self.old)]:
            with self.subTest(key=name):
                token = fernet.encrypt("caf\u00e9".encode()).decode()
                with self.connection.cursor() as cursor:
                    cursor.execute("UPDATE fernet_sidecar_example_device SET totp_secret = %s WHERE id = %s", [token, device.pk])
                self.assertEqual(self.Device.objects.get(pk=device.pk).totp_secret, "caf\u00e9")

    def test_field_methods(self):
        field = self.Device._meta.get_field("totp_secret")
        token = field.get_prep_value("s3cret")
        self.assertEqual(self.primary.decrypt(token.encode()), b"s3cret")
        self.assertEqual(field.from_db_value(token, None, self.connection), "s3cret")
        self.assertIsNone(field.get_prep_value(None))
        self.assertIsNone(field.from_db_value(None, None, self.connection))
        with self.assertRaises(CryptographyInvalidToken):
            field.from_db_value("not a token", None, self.connection)

    def test_null_and_no_equality_lookups(self):
        from django.core.exceptions import FieldError

        device = self.Device.objects.create(name="empty", totp_secret=None)
        self.assertIsNone(self.raw_column(device.pk))
        self.assertIsNone(self.Device.objects.get(pk=device.pk).totp_secret)
        self.assertTrue(self.Device.objects.filter(pk=device.pk, totp_secret__isnull=True).exists())
        with self.assertRaises(FieldError):
            self.Device.objects.filter(totp_secret="JBSWY3DPEHPK3PXP").exists()
