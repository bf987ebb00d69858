"""fernet_sidecar.flask, and examples/flask_app.py on it, with Debian's
Flask 2.2, Flask-SQLAlchemy 3 and asgiref, through the real sidecar and the
in-process backend, on SQLite and PostgreSQL."""

import json
import os
import tempfile
import time
import unittest

from cryptography.fernet import Fernet

from fernet_sidecar import InProcessFernet, InvalidToken, SidecarFernet, SidecarUnavailable

from . import env

try:
    import flask
    import flask_sqlalchemy  # noqa: F401
    import pyotp
    import sqlalchemy as sa
except ImportError:  # pragma: no cover - the Go test checks for them first
    flask = None

TOTP = "JBSWY3DPEHPK3PXP"


def closed_port_target():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]


class Setup:
    """Keys, targets, and an app of examples/flask_app.py per test."""

    def setUp(self):
        if flask is None:
            env.missing("Flask, Flask-SQLAlchemy, pyotp and SQLAlchemy (python3-flask, python3-flask-sqlalchemy, python3-pyotp)")
        self.primary_key = env.get("PRIMARY_KEY")
        self.old_key = env.get("OLD_KEY")
        self.primary = Fernet(self.primary_key)
        self.old = Fernet(self.old_key)
        self.target = env.get("TCP_TARGET")
        self.options = {"max_batch_items": int(env.get("MAX_BATCH_ITEMS"))}

    def make_app(self, database_uri=None, **config):
        from examples.flask_app import create_app, db

        if database_uri is None:
            tmp = tempfile.mkdtemp()
            database_uri = "sqlite:///" + os.path.join(tmp, "devices.db")
        config = dict(
            {
                "TESTING": True,
                "FERNET_SIDECAR_TARGET": self.target,
                "FERNET_SIDECAR_OPTIONS": self.options,
                "SQLALCHEMY_DATABASE_URI": database_uri,
            },
            **config,
        )
        app = create_app(config)
        self.addCleanup(app.extensions["fernet_sidecar"].reset)
        with app.app_context():
            db.create_all()
        self.addCleanup(self.drop_all, app)
        return app

    def drop_all(self, app):
        from examples.flask_app import db

        with app.app_context():
            db.drop_all()
            db.engine.dispose()

    def raw(self, app, sql, **params):
        from examples.flask_app import db

        with app.app_context(), db.engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return result.all() if result.returns_rows else None


class ExtensionTest(Setup, unittest.TestCase):
    def test_one_client_per_app_and_process(self):
        app = self.make_app()
        state = app.extensions["fernet_sidecar"]
        with app.app_context():
            from fernet_sidecar.flask import fernet

            client = fernet()
            self.assertIsInstance(client, SidecarFernet)
            self.assertIs(fernet(), client)
            self.assertIs(flask.current_app.extensions["fernet_sidecar"].fernet, client)
            self.assertEqual(self.primary.decrypt(state.encrypt(b"x")), b"x")
        other = self.make_app(FERNET_SIDECAR_BACKEND="in-process", FERNET_SIDECAR_KEYS=[self.primary_key], FERNET_SIDECAR_OPTIONS={})
        with other.app_context():
            self.assertIsInstance(fernet(), InProcessFernet)

    def test_a_forked_child_makes_its_own_client(self):
        # The in-process backend: a gRPC client used before a fork cannot
        # be used, or replaced, in the child unless gRPC's fork support is
        # on, which is why the extension makes nothing until first use.
        app = self.make_app(FERNET_SIDECAR_BACKEND="in-process", FERNET_SIDECAR_KEYS=[self.primary_key], FERNET_SIDECAR_OPTIONS={})
        with app.app_context():
            from fernet_sidecar.flask import fernet

            parent = fernet()
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report, and leave without running anything else
                try:
                    child = fernet()
                    out = {"new": child is not parent, "same in the child": fernet() is child, "works": self.primary.decrypt(child.encrypt(b"child")) == b"child"}
                except BaseException as err:  # pragma: no cover - reported to the parent
                    out = {"error": repr(err)}
                os.write(write, json.dumps(out).encode())
                os._exit(0)
            os.close(write)
            with os.fdopen(read) as f:
                got = json.loads(f.read())
            os.waitpid(pid, 0)
            self.assertEqual(got, {"new": True, "same in the child": True, "works": True})
            self.assertIs(fernet(), parent)

    def test_config_errors(self):
        from fernet_sidecar.flask import FernetSidecar

        app = flask.Flask("bad")
        app.config["FERNET_SIDECAR_BACKEND"] = "local"
        with self.assertRaisesRegex(ValueError, "FERNET_SIDECAR_BACKEND"):
            FernetSidecar(app)
        app = flask.Flask("no-keys")
        app.config["FERNET_SIDECAR_BACKEND"] = "in-process"
        FernetSidecar(app)
        with app.app_context(), self.assertRaisesRegex(ValueError, "keys"):
            app.extensions["fernet_sidecar"].fernet
        with flask.Flask("none").app_context(), self.assertRaisesRegex(RuntimeError, "init_app"):
            from fernet_sidecar.flask import fernet

            fernet()

    def test_ttl_from_config(self):
        app = self.make_app(FERNET_SIDECAR_TTL=60)
        http = app.test_client()
        stale = self.primary.encrypt_at_time(b"stale", int(time.time()) - 3600).decode()
        fresh = self.old.encrypt(b"fresh").decode()
        self.assertEqual(http.post("/secrets/open", json={"token": fresh}).get_json(), {"secret": "fresh"})
        self.assertEqual(http.post("/secrets/open", json={"token": stale}).get_json()["reason"], "EXPIRED")

    def test_error_handlers(self):
        app = self.make_app()
        http = app.test_client()
        for token, reason in [("nope", "MALFORMED"), (Fernet(Fernet.generate_key()).encrypt(b"x").decode(), "INVALID_SIGNATURE")]:
            with self.subTest(reason=reason):
                got = http.post("/secrets/open", json={"token": token})
                self.assertEqual((got.status_code, got.get_json()), (400, {"error": "invalid token", "reason": reason}))
                self.assertNotIn(token, got.get_data(as_text=True))
        down = self.make_app(FERNET_SIDECAR_TARGET=closed_port_target(), FERNET_SIDECAR_OPTIONS={"max_attempts": 1})
        got = down.test_client().post("/secrets", data=b"x")
        self.assertEqual((got.status_code, got.get_json()), (503, {"error": "encryption service unavailable"}))

    def test_a_write_with_the_sidecar_down_is_a_503(self):
        """A Core INSERT binds its values one by one: with the sidecar down
        it raises SidecarUnavailable itself, which the error handler turns
        into a 503, not SQLAlchemy's StatementError, a 500 whose message
        lists the plaintexts."""
        from examples.flask_app import Device, db

        down = self.make_app(FERNET_SIDECAR_TARGET=closed_port_target(), FERNET_SIDECAR_OPTIONS={"max_attempts": 1})

        @down.route("/devices/bulk", methods=["POST"])
        def bulk():
            db.session.execute(sa.insert(Device), [{"name": "d%d" % i, "secret": secret} for i, secret in enumerate(flask.request.json)])
            db.session.commit()
            return {}

        secrets = ["SECRETONESECRETONE", "SECRETTWOSECRETTWO"]
        got = down.test_client().post("/devices/bulk", json=secrets)
        self.assertEqual((got.status_code, got.get_json()), (503, {"error": "encryption service unavailable"}))
        self.assertEqual(self.raw(down, "SELECT COUNT(*) FROM device"), [(0,)])

    def test_no_error_handlers_unless_configured(self):
        app = self.make_app(FERNET_SIDECAR_ERROR_HANDLERS=False)
        with self.assertRaises(InvalidToken):
            app.test_client().post("/secrets/open", json={"token": "nope"})
        down = self.make_app(FERNET_SIDECAR_ERROR_HANDLERS=False, FERNET_SIDECAR_TARGET=closed_port_target(), FERNET_SIDECAR_OPTIONS={"max_attempts": 1})
        with self.assertRaises(SidecarUnavailable):
            down.test_client().post("/secrets", data=b"x")

    def test_async_view(self):
        for backend, config in [
            ("sidecar", {}),
            ("in-process", {"FERNET_SIDECAR_BACKEND": "in-process", "FERNET_SIDECAR_KEYS": [self.primary_key, self.old_key], "FERNET_SIDECAR_OPTIONS": {}}),
        ]:
            with self.subTest(backend):
                http = self.make_app(**config).test_client()
                for i in range(3):  # each request runs in an event loop of its own
                    token = self.old.encrypt(b"async %d" % i).decode()
                    got = http.post("/secrets/open-async", json={"token": token})
                    self.assertEqual((got.status_code, got.get_json()), (200, {"secret": "async %d" % i}))
                got = http.post("/secrets/open-async", json={"token": "nope"})
                self.assertEqual((got.status_code, got.get_json()["reason"]), (400, "MALFORMED"))


class Database:
    """Flask-SQLAlchemy and the CLI, once per database."""

    def database_uri(self):
        raise NotImplementedError

    def test_seed_login_legacy_and_token_rows(self):
        app = self.make_app(self.database_uri())
        http = app.test_client()
        self.assertEqual(http.post("/devices", json={"name": "new", "secret": TOTP}).status_code, 201)
        self.raw(app, "INSERT INTO device (name, secret) VALUES ('old', :s)", s="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        (stored,) = self.raw(app, "SELECT secret FROM device WHERE name = 'new'")[0]
        self.assertEqual(self.primary.decrypt(stored.encode()), TOTP.encode())
        for name, secret in [("new", TOTP), ("old", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")]:
            with self.subTest(name):
                code = pyotp.TOTP(secret).now()
                self.assertEqual(http.post("/login", json={"name": name, "code": code}).get_json(), {"ok": True})
                wrong = "%06d" % ((int(code) + 500000) % 1000000)
                self.assertEqual(http.post("/login", json={"name": name, "code": wrong}).status_code, 401)
        listed = http.get("/devices").get_json()["devices"]
        self.assertEqual(listed, [{"name": "new", "secret_length": 16}, {"name": "old", "secret_length": 32}])

    def cli(self, app, *args):
        return app.test_cli_runner().invoke(args=list(args))

    def test_status_command(self):
        app = self.make_app(self.database_uri())
        got = self.cli(app, "fernet", "status")
        self.assertEqual(got.exit_code, 0, got.output)
        ids = [_key_id(k) for k in (self.primary_key, self.old_key)]
        self.assertIn("primary key id: %s" % ids[0], got.output)
        self.assertIn("decrypt-only key ids: %s" % ids[1], got.output)
        down = self.make_app(self.database_uri(), FERNET_SIDECAR_TARGET=closed_port_target(), FERNET_SIDECAR_OPTIONS={"max_attempts": 1})
        got = self.cli(down, "fernet", "status")
        self.assertEqual(got.exit_code, 1)
        self.assertIn("Error: sidecar at", got.output)

    def test_reencrypt_command(self):
        app = self.make_app(self.database_uri())
        rows = [
            ("primary", self.primary.encrypt(b"AAAAAAAAAAAAAAAA").decode()),
            ("old1", self.old.encrypt_at_time(b"BBBBBBBBBBBBBBBB", 1_600_000_000).decode()),
            ("old2", self.old.encrypt(b"CCCCCCCCCCCCCCCC").decode()),
            ("legacy", "DDDDDDDDDDDDDDDD"),
        ]
        for name, secret in rows:
            self.raw(app, "INSERT INTO device (name, secret) VALUES (:n, :s)", n=name, s=secret)
        base = ["fernet", "reencrypt", "--table", "device", "--column", "secret", "--batch-size", "3"]

        got = self.cli(app, *base, "--check", "--legacy-plaintext", "totp-base32")
        self.assertEqual(got.exit_code, 3, got.output)
        self.assertIn("under decrypt-only key %s: 2" % _key_id(self.old_key), got.output)
        self.assertIn("legacy plaintext: 1", got.output)
        self.assertEqual(self.raw(app, "SELECT secret FROM device ORDER BY id"), [(s,) for _, s in rows])

        # A dry run through an engine of its own: counts, and writes nothing.
        uri = app.config["SQLALCHEMY_DATABASE_URI"]
        got = self.cli(app, *base, "--dry-run", "--database-uri", uri, "--legacy-plaintext", "totp-base32", "--encrypt-plaintext")
        self.assertEqual(got.exit_code, 3, got.output)
        self.assertIn("to re-encrypt: 2", got.output)
        self.assertIn("rows written: 0", got.output)
        self.assertEqual(self.raw(app, "SELECT secret FROM device ORDER BY id"), [(s,) for _, s in rows])

        got = self.cli(app, *base, "--legacy-plaintext", "totp-base32", "--encrypt-plaintext")
        self.assertEqual(got.exit_code, 0, got.output)
        self.assertIn("rows written: 3", got.output)
        stored = [s for (s,) in self.raw(app, "SELECT secret FROM device ORDER BY id")]
        self.assertEqual(stored[0], rows[0][1])  # already under the primary: not written
        self.assertEqual([self.primary.decrypt(s.encode()) for s in stored], [b"AAAAAAAAAAAAAAAA", b"BBBBBBBBBBBBBBBB", b"CCCCCCCCCCCCCCCC", b"DDDDDDDDDDDDDDDD"])
        self.assertEqual(self.primary.extract_timestamp(stored[1].encode()), 1_600_000_000)

        got = self.cli(app, *base, "--check")
        self.assertEqual(got.exit_code, 0, got.output)
        got = self.cli(app, *base, "--encrypt-plaintext")
        self.assertEqual(got.exit_code, 2)
        self.assertIn("--encrypt-plaintext needs --legacy-plaintext", got.output)
        for output in (got.output,):
            for _, secret in rows:
                self.assertNotIn(secret, output)


def _key_id(key):
    import base64
    import hashlib

    return hashlib.sha256(base64.urlsafe_b64decode(key)).hexdigest()[:16]


class SQLiteTest(Setup, Database, unittest.TestCase):
    def database_uri(self):
        return "sqlite:///" + os.path.join(tempfile.mkdtemp(), "devices.db")


class PostgreSQLTest(Setup, Database, unittest.TestCase):
    def database_uri(self):
        return env.get("POSTGRES_URL")


if __name__ == "__main__":
    unittest.main()
