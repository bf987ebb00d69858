"""Where the sidecar under test is, and the missing-prerequisite policy.

The Go test client/python_test.go builds fernet-sidecar, starts it over TCP
and on a Unix socket with known keys, and a third with TLS, and runs these tests with:

    SIDECAR_TEST_TCP_TARGET       host:port of the TCP sidecar
    SIDECAR_TEST_UNIX_TARGET      unix:///path of the Unix socket sidecar
    SIDECAR_TEST_PRIMARY_KEY      the sidecars' primary key
    SIDECAR_TEST_OLD_KEY          their one decrypt-only key
    SIDECAR_TEST_MAX_PLAINTEXT    their --max-plaintext-bytes
    SIDECAR_TEST_MAX_BATCH_ITEMS  their --max-batch-items
    SIDECAR_TEST_TLS_TARGET       host:port of a third sidecar, with TLS and
                                  client certificates required (mTLS)
    SIDECAR_TEST_TLS_CA, SIDECAR_TEST_TLS_CLIENT_CERT, SIDECAR_TEST_TLS_CLIENT_KEY
                                  PEM files: its CA, a client certificate and key

Without them the tests skip. As in the Go tests, FERNET_SIDECAR_FULL=1 turns
a missing prerequisite into a failure.
"""

import os
import unittest

FULL = os.environ.get("FERNET_SIDECAR_FULL") == "1"


def missing(what):
    """Ends the test (or class) because what is missing: a skip, or a
    failure under FERNET_SIDECAR_FULL=1."""
    if FULL:
        raise AssertionError("%s is required because FERNET_SIDECAR_FULL=1" % what)
    raise unittest.SkipTest("%s is not available" % what)


def get(name):
    value = os.environ.get("SIDECAR_TEST_" + name)
    if not value:
        missing("SIDECAR_TEST_%s (run the tests through `go test ./client/`)" % name)
    return value
