"""examples/flask_app.py with Debian's Flask, through the real sidecar."""

import unittest

from cryptography.fernet import Fernet

from . import env

try:
    import flask
except ImportError:  # pragma: no cover - the Go test checks for it first
    flask = None


class FlaskAppTest(unittest.TestCase):
    def setUp(self):
        if flask is None:
            env.missing("Flask (Debian package python3-flask)")
        from examples.flask_app import create_app

        self.app = create_app({"FERNET_SIDECAR_TARGET": env.get("TCP_TARGET"), "SECRET_TTL": 3600, "TESTING": True})
        self.addCleanup(lambda: self.app.extensions.get("fernet_sidecar") and self.app.extensions["fernet_sidecar"].close())
        self.http = self.app.test_client()
        self.primary = Fernet(env.get("PRIMARY_KEY"))

    def test_seal_and_open(self):
        sealed = self.http.post("/secrets", data=b"JBSWY3DPEHPK3PXP")
        self.assertEqual(sealed.status_code, 200)
        token = sealed.get_json()["token"]
        self.assertEqual(self.primary.decrypt(token), b"JBSWY3DPEHPK3PXP")
        opened = self.http.post("/secrets/open", json={"token": token})
        self.assertEqual((opened.status_code, opened.get_json()), (200, {"secret": "JBSWY3DPEHPK3PXP"}))

    def test_bad_and_expired_tokens(self):
        for token, reason in [("nope", "MALFORMED"), (self.primary.encrypt_at_time(b"x", 1).decode(), "EXPIRED")]:
            with self.subTest(reason=reason):
                opened = self.http.post("/secrets/open", json={"token": token})
                self.assertEqual((opened.status_code, opened.get_json()["reason"]), (400, reason))

    def test_sidecar_down_is_503(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        from examples.flask_app import create_app

        app = create_app({"FERNET_SIDECAR_TARGET": "127.0.0.1:%d" % port, "TESTING": True})
        self.assertEqual(app.test_client().post("/secrets", data=b"x").status_code, 503)
        app.extensions["fernet_sidecar"].close()
