from django.db import models

from fernet_sidecar.django import fields


class Account(models.Model):
    name = models.CharField(max_length=50)
    secret = fields.EncryptedTextField(null=True, blank=True)
    code = fields.EncryptedCharField(max_length=10, null=True, blank=True)
    email = fields.EncryptedEmailField(null=True, blank=True)
    number = fields.EncryptedIntegerField(null=True, blank=True)
    flag = fields.EncryptedBooleanField(null=True, blank=True)
    day = fields.EncryptedDateField(null=True, blank=True)
    moment = fields.EncryptedDateTimeField(null=True, blank=True)
    blob = fields.EncryptedBinaryField(null=True, blank=True)
    data = fields.EncryptedJSONField(null=True, blank=True)
    # Plain, with a backend converter on SQLite: read beside the batch.
    created = models.DateTimeField(null=True, blank=True)


class Device(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="devices", null=True)
    totp_secret = fields.EncryptedCharField(max_length=64, legacy_plaintext="totp-base32", null=True)


class Note(models.Model):
    """One encrypted field: the rotation and concurrency tests' table."""

    body = fields.EncryptedTextField(null=True)
