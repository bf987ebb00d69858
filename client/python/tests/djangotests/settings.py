"""Settings of the Django suite, from the environment client/django_test.go sets:

    FERNET_DJANGO_DB           sqlite (default), postgresql or mysql
    FERNET_DJANGO_DB_HOST      PostgreSQL's socket directory, MariaDB's socket;
                               for SQLite, the directory of its files
    FERNET_DJANGO_DB_USER, FERNET_DJANGO_DB_PASSWORD
    FERNET_DJANGO_BACKEND      sidecar (default) or in-process
    SIDECAR_TEST_UNIX_TARGET   the sidecar (see tests/env.py)
    SIDECAR_TEST_PRIMARY_KEY, SIDECAR_TEST_OLD_KEY   its keys, which the
                               in-process backend is given too
"""

import os
import tempfile

SECRET_KEY = "django-insecure-fernet-sidecar-tests"
USE_TZ = True
DEBUG = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.sessions",
    "fernet_sidecar.django",
    "tests.djangotests",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.djangotests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_db = os.environ.get("FERNET_DJANGO_DB", "sqlite")
if _db == "sqlite":
    # A file, not memory: the concurrency tests write from another thread.
    _dir = os.environ.get("FERNET_DJANGO_DB_HOST") or tempfile.mkdtemp(prefix="fernet-django-")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(_dir, "app.sqlite3"),
            "TEST": {"NAME": os.path.join(_dir, "test.sqlite3")},
            "OPTIONS": {"timeout": 30},
        }
    }
elif _db in ("postgresql", "mysql"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends." + _db,
            "NAME": "app",
            "HOST": os.environ["FERNET_DJANGO_DB_HOST"],
            "USER": os.environ.get("FERNET_DJANGO_DB_USER", ""),
            "PASSWORD": os.environ.get("FERNET_DJANGO_DB_PASSWORD", ""),
        }
    }
    if _db == "mysql":
        DATABASES["default"]["OPTIONS"] = {"charset": "utf8mb4"}
        DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
else:
    raise ValueError("FERNET_DJANGO_DB must be sqlite, postgresql or mysql, not %r" % _db)
# A second database, for the database routers' tests: only the tests that
# name it (databases = {"default", "other"}) make its test database.
DATABASES["other"] = dict(DATABASES["default"])
if _db == "sqlite":
    DATABASES["other"].update(NAME=os.path.join(_dir, "other.sqlite3"), TEST={"NAME": os.path.join(_dir, "test-other.sqlite3")})
else:
    DATABASES["other"]["NAME"] = "other"

if os.environ.get("FERNET_DJANGO_BACKEND", "sidecar") == "in-process":
    FERNET_SIDECAR = {
        "BACKEND": "in-process",
        "KEYS": [os.environ.get("SIDECAR_TEST_PRIMARY_KEY", ""), os.environ.get("SIDECAR_TEST_OLD_KEY", "")],
    }
else:
    FERNET_SIDECAR = {"TARGET": os.environ.get("SIDECAR_TEST_UNIX_TARGET", "unix:///nonexistent/fernet.sock"), "TIMEOUT": 10.0}
