"""The example's test settings on the in-process backend, as an app's test
suite runs with no sidecar (docs/django.md, "Tests without a sidecar"):
the same tests, with SIDECAR_TEST_PRIMARY_KEY as the only key (the Go test
client/totp_django_test.go sets it)."""

import os

from .test_settings import *  # noqa: F401,F403

FERNET_SIDECAR = {"BACKEND": "in-process", "KEYS": [os.environ["SIDECAR_TEST_PRIMARY_KEY"]]}
