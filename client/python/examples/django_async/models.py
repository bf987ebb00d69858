from django.db import models

from fernet_sidecar.django.fields import EncryptedTextField


class Secret(models.Model):
    """Rows of an existing table of tokens, which `manage.py
    fernet_reencrypt` re-encrypts under the primary key."""

    token = EncryptedTextField()

    class Meta:
        db_table = "secrets"
