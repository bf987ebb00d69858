from django.apps import AppConfig


class FernetSidecarConfig(AppConfig):
    name = "fernet_sidecar.django"
    label = "fernet_sidecar"
    verbose_name = "fernet-sidecar"

    def ready(self):
        from . import _batch, checks

        checks.register()
        _batch.install()
