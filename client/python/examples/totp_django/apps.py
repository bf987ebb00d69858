from django.apps import AppConfig


class TOTPDjangoConfig(AppConfig):
    name = "examples.totp_django"
    label = "totp_django"
    verbose_name = "TOTP devices kept in fernet-sidecar"
    default_auto_field = "django.db.models.BigAutoField"
