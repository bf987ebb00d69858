"""fernet_sidecar.django: encrypted model fields for Django, through
fernet-sidecar.

    INSTALLED_APPS = [..., "fernet_sidecar.django"]
    FERNET_SIDECAR = {"TARGET": "unix:///run/fernet/fernet.sock"}

    from fernet_sidecar.django.fields import EncryptedCharField

    class Device(models.Model):
        totp_secret = EncryptedCharField(max_length=64)

See docs/django.md in the fernet-sidecar repository.
"""
