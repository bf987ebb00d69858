"""fernet_sidecar._walk over Python's sqlite3 (paramstyle qmark), with the
in-process backend and with the sidecar; the Django suite drives it on
PostgreSQL and MariaDB too."""

import sqlite3
import tempfile
import unittest

from cryptography.fernet import Fernet

from fernet_sidecar import InProcessFernet, SidecarFernet
from fernet_sidecar._legacy import LEGACY_SHAPES, looks_like
from fernet_sidecar._walk import Database, walk

from . import env


def ansi_quote(name):
    return '"%s"' % name.replace('"', '""')


class TokenPrefix(unittest.TestCase):
    def test_a_value_that_starts_as_a_token_is_never_legacy(self):
        # rotation/plaintext.go has the same rule: starts with gAAAAA, not legacy.
        for shape in LEGACY_SHAPES:
            for value in ["gAAAAABqRSTUVWXY", "gAAAAAbcdefghijklmnopqrstuvwxyzA", "gAAAAA" + "a" * 34]:
                with self.subTest(shape=shape, value=value):
                    self.assertFalse(looks_like(shape, value))
        self.assertTrue(looks_like("totp-base32", "GAAAAABQRSTUVWXY"))  # upper case: a secret
        self.assertTrue(looks_like("totp-base32", "AgAAAAABQRSTUVWX"))


class WalkTests:
    """Run once per backend by the subclasses below."""

    def make_fernet(self):
        raise NotImplementedError

    def setUp(self):
        self.new_key, self.old_key = self.keys()
        self.new, self.old = Fernet(self.new_key), Fernet(self.old_key)
        self.fernet = self.make_fernet()
        self.addCleanup(self.fernet.close)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = tmp.name + "/app.sqlite3"
        self.conn = sqlite3.connect(self.path)
        self.addCleanup(self.conn.close)
        self.conn.execute('CREATE TABLE "app table" (id INTEGER PRIMARY KEY, "secret col" TEXT)')
        self.conn.commit()
        self.db = Database(self.conn, paramstyle="qmark", quote=ansi_quote)

    def insert(self, rows):
        self.conn.executemany('INSERT INTO "app table" (id, "secret col") VALUES (?, ?)', rows)
        self.conn.commit()

    def column(self):
        return dict(self.conn.execute('SELECT id, "secret col" FROM "app table"'))

    def run_walk(self, **kwargs):
        return walk(self.db, self.fernet, "app table", "secret col", "id", **kwargs)

    def test_rotates_old_rows_keeps_the_rest(self):
        old_token = self.old.encrypt(b"old secret").decode()
        new_token = self.new.encrypt(b"new secret").decode()
        self.insert([(1, old_token), (2, new_token), (3, None), (4, "JBSWY3DPEHPK3PXP"), (5, "garbage")] + [(10 + i, self.old.encrypt(b"x%d" % i).decode()) for i in range(7)])
        report = self.run_walk(batch_size=3)
        self.assertEqual(report.rows, 12)
        self.assertEqual(report.null, 1)
        self.assertEqual(report.primary, 1)
        self.assertEqual(report.rotated, 8)
        self.assertEqual(report.written, 8)
        self.assertEqual(sum(report.undecryptable.values()), 2)
        self.assertEqual(report.undecryptable_pks, [4, 5])
        self.assertEqual(report.pending(), 2)
        after = self.column()
        self.assertEqual(after[2], new_token)
        self.assertEqual(after[3], None)
        self.assertEqual(after[4], "JBSWY3DPEHPK3PXP")
        self.assertEqual(self.new.decrypt(after[1].encode()), b"old secret")
        # The timestamp is kept, as MultiFernet.rotate does.
        self.assertEqual(self.new.extract_timestamp(after[1].encode()), self.old.extract_timestamp(old_token.encode()))
        for i in range(7):
            self.assertEqual(self.new.decrypt(after[10 + i].encode()), b"x%d" % i)
        # A rerun has nothing left to write.
        again = self.run_walk(batch_size=3)
        self.assertEqual((again.rotated, again.written, again.primary), (0, 0, 9))

    def test_check_counts_by_key_and_writes_nothing(self):
        self.insert([(1, self.old.encrypt(b"a").decode()), (2, self.old.encrypt(b"b").decode()), (3, self.new.encrypt(b"c").decode()), (4, None)])
        before = self.column()
        report = self.run_walk(check=True)
        self.assertEqual(self.column(), before)
        self.assertEqual(dict(report.decrypt_only), {self.fernet.status().decrypt_only_key_ids[0]: 2})
        self.assertEqual((report.primary, report.null, report.written), (1, 1, 0))
        self.assertEqual(report.pending(), 2)

    def test_dry_run_writes_nothing(self):
        self.insert([(1, self.old.encrypt(b"a").decode())])
        before = self.column()
        report = self.run_walk(dry_run=True)
        self.assertEqual(self.column(), before)
        self.assertEqual((report.rotated, report.written, report.pending()), (1, 0, 1))

    def test_legacy_plaintext(self):
        self.insert([(1, "JBSWY3DPEHPK3PXP"), (2, "not base32!"), (3, self.old.encrypt(b"a").decode())])
        counted = self.run_walk(legacy_plaintext="totp-base32", dry_run=True)
        self.assertEqual((counted.legacy, counted.encrypted, counted.pending()), (1, 0, 3))
        done = self.run_walk(legacy_plaintext="totp-base32", encrypt_plaintext=True)
        self.assertEqual((done.legacy, done.encrypted, done.written), (1, 1, 2))
        after = self.column()
        self.assertEqual(self.new.decrypt(after[1].encode()), b"JBSWY3DPEHPK3PXP")
        self.assertEqual(after[2], "not base32!")
        with self.assertRaises(ValueError):
            self.run_walk(encrypt_plaintext=True)

    def test_a_truncated_token_is_never_legacy_plaintext(self):
        # 16 base32 characters, so it has the shape; but it starts as every
        # token does, and encrypting it would bury the real secret.
        truncated = "gAAAAABqRSTUVWXY"
        self.insert([(1, truncated), (2, "GAAAAABQRSTUVWXY")])
        report = self.run_walk(legacy_plaintext="totp-base32", encrypt_plaintext=True)
        self.assertEqual((report.legacy, report.encrypted, report.undecryptable_pks), (1, 1, [1]))
        after = self.column()
        self.assertEqual(after[1], truncated)
        self.assertEqual(self.new.decrypt(after[2].encode()), b"GAAAAABQRSTUVWXY")

    def test_binary_values_rotate_and_stay_binary(self):
        # SQLite keeps bytes as a BLOB in any column, and never finds a BLOB
        # equal to a text value; a bytea or BLOB column reads as bytes too.
        old_token = self.old.encrypt(b"old secret")
        self.insert([(1, old_token), (2, b"JBSWY3DPEHPK3PXP"), (3, self.new.encrypt(b"new"))])
        report = self.run_walk(legacy_plaintext="totp-base32", encrypt_plaintext=True)
        self.assertEqual((report.rotated, report.encrypted, report.primary), (1, 1, 1))
        self.assertEqual((report.written, report.conflicts, report.pending()), (2, 0, 0))
        after = self.column()
        self.assertIsInstance(after[1], bytes)
        self.assertEqual(self.new.decrypt(after[1]), b"old secret")
        self.assertEqual(self.new.extract_timestamp(after[1]), self.old.extract_timestamp(old_token))
        self.assertIsInstance(after[2], bytes)
        self.assertEqual(self.new.decrypt(after[2]), b"JBSWY3DPEHPK3PXP")

    def test_a_row_the_app_changed_meanwhile_keeps_the_apps_value(self):
        self.insert([(1, self.old.encrypt(b"a").decode()), (2, self.old.encrypt(b"b").decode())])
        app_token = self.new.encrypt(b"written by the app").decode()
        fernet = self.fernet

        class AppWritesDuringTheRPC:
            def rotate_many(self, tokens, **kwargs):
                out = fernet.rotate_many(tokens, **kwargs)
                conn2 = sqlite3.connect(path)
                conn2.execute('UPDATE "app table" SET "secret col" = ? WHERE id = 2', [app_token])
                conn2.commit()
                conn2.close()
                return out

        path = self.path
        report = walk(self.db, AppWritesDuringTheRPC(), "app table", "secret col", "id")
        self.assertEqual((report.written, report.conflicts), (1, 1))
        self.assertEqual(self.column()[2], app_token)

    def test_paramstyles(self):
        for style, expected in [
            ("qmark", ("a = ? AND b = ?", [1, 2])),
            ("format", ("a = %s AND b = %s", [1, 2])),
            ("pyformat", ("a = %(p0)s AND b = %(p1)s", {"p0": 1, "p1": 2})),
            ("named", ("a = :p0 AND b = :p1", {"p0": 1, "p1": 2})),
            ("numeric", ("a = :1 AND b = :2", [1, 2])),
        ]:
            with self.subTest(style=style):
                self.assertEqual(Database(None, paramstyle=style, quote=ansi_quote).sql("a = {} AND b = {}", [1, 2]), expected)
        with self.assertRaises(ValueError):
            Database(None, paramstyle="dollar", quote=ansi_quote)


class InProcessWalkTest(WalkTests, unittest.TestCase):
    def keys(self):
        return Fernet.generate_key(), Fernet.generate_key()

    def make_fernet(self):
        return InProcessFernet([self.new_key, self.old_key])


class SidecarWalkTest(WalkTests, unittest.TestCase):
    def keys(self):
        return env.get("PRIMARY_KEY").encode(), env.get("OLD_KEY").encode()

    def make_fernet(self):
        return SidecarFernet(env.get("UNIX_TARGET"), timeout=10)

