"""Settings for the example's tests: `python3 -m django test
examples.totp_django --settings=examples.totp_django.test_settings`, from
client/python, with the SIDECAR_TEST_* variables of tests/env.py (the Go
test client/totp_django_test.go sets them)."""

import os

SECRET_KEY = "only for the tests"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "fernet_sidecar.django",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "examples.totp_django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "examples.totp_django.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
USE_TZ = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for tests only
FERNET_SIDECAR = {"TARGET": os.environ.get("SIDECAR_TEST_UNIX_TARGET", "localhost:50051"), "TIMEOUT": 10.0}
OTP_TOTP_ISSUER = "Example"
OTP_TOTP_THROTTLE_FACTOR = 0  # the tests send wrong codes on purpose
