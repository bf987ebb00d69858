"""Settings of the example, from the environment:

    FERNET_SIDECAR_TARGET   the sidecar ("unix:///run/fernet/fernet.sock")
    DATABASE_PATH           the SQLite file (default: secrets.sqlite3)

    python3 -m django runserver --settings examples.django_async.settings      # or an ASGI server
    python3 -m django test examples.django_async --settings examples.django_async.settings
    python3 -m django fernet_reencrypt --settings examples.django_async.settings

(from client/python; the Go tests client/django_async_test.go and
client/pushgateway_test.go run the last two against the real sidecar).
"""

import os

SECRET_KEY = "only for the example"
ALLOWED_HOSTS = ["localhost", "testserver"]
INSTALLED_APPS = ["fernet_sidecar.django", "examples.django_async"]
ROOT_URLCONF = "examples.django_async.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("DATABASE_PATH", "secrets.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
FERNET_SIDECAR = {"TARGET": os.environ.get("FERNET_SIDECAR_TARGET", "localhost:50051"), "TIMEOUT": 10.0}
# Without Django's logging config: its handlers outlive sys at exit, where
# gRPC's poller thread may still log.
LOGGING_CONFIG = None
