"""A Django model field stored as a Fernet token made by fernet-sidecar.

The tokens are the ones cryptography.fernet makes with the same key, so a
column written by an app that used Fernet in process reads as it is, and
the app can go back to Fernet at any time.

settings.py:

    FERNET_SIDECAR_TARGET = os.environ.get("FERNET_SIDECAR_TARGET", "localhost:50051")
    FERNET_SIDECAR_TIMEOUT = 5.0           # seconds per call
    FERNET_SIDECAR_TTL = None              # or seconds: refuse older tokens on read

models.py:

    from .django_field import EncryptedTextField

    class Device(models.Model):
        totp_secret = EncryptedTextField()

A value that does not decrypt raises fernet_sidecar.InvalidToken (a
cryptography.fernet.InvalidToken) when the row is read; a sidecar that is
down raises fernet_sidecar.SidecarUnavailable. Every token is different
(random IV), so the field cannot be filtered on.
"""

import threading

from django.conf import settings
from django.db import models

from fernet_sidecar import SidecarFernet

_lock = threading.Lock()
_client = None


def sidecar() -> SidecarFernet:
    """The process's one client, made on first use: in each worker after a
    fork, never in a parent that forks (gRPC channels do not survive a
    fork)."""
    global _client
    with _lock:
        if _client is None:
            _client = SidecarFernet(
                getattr(settings, "FERNET_SIDECAR_TARGET", "localhost:50051"),
                timeout=getattr(settings, "FERNET_SIDECAR_TIMEOUT", 5.0),
            )
        return _client


class EncryptedTextField(models.TextField):
    """A str encrypted in the database, plain in Python."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return None
        return sidecar().encrypt(value.encode("utf-8")).decode("ascii")

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        ttl = getattr(settings, "FERNET_SIDECAR_TTL", None)
        return sidecar().decrypt(value, ttl=ttl).decode("utf-8")

    def get_lookup(self, lookup_name):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None  # an equality on a random-IV token never matches: refuse it
