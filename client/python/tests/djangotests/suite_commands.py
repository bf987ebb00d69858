"""Settings checks, manage.py fernet_status and fernet_reencrypt, the
migration operations, and a re-encryption while the app writes."""

import contextlib
import io
import logging
import os
import random
import threading
import time
from unittest import mock

from cryptography.fernet import Fernet
from django.core import checks as django_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, models, transaction
from django.db.transaction import TransactionManagementError
from django.db.migrations.state import ProjectState
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import isolate_apps

from fernet_sidecar.django import checks, conf
from fernet_sidecar.django._reencrypt import walk_field
from fernet_sidecar.django.fields import EncryptedTextField
from fernet_sidecar.django.management.commands import fernet_reencrypt
from fernet_sidecar.django.migrations import EncryptPlaintext, ReEncrypt

from .. import env
from .helpers import keys, raw, set_raw
from .models import Device, Note

IN_PROCESS = os.environ.get("FERNET_DJANGO_BACKEND") == "in-process"
KEY = Fernet.generate_key().decode()


def key_id(fernet_key):
    from fernet_sidecar._inprocess import key_id as sidecar_key_id

    return sidecar_key_id(fernet_key)


class Settings(TestCase):
    def test_the_suite_runs_on_the_database_asked_for(self):
        self.assertEqual(connection.vendor, os.environ.get("FERNET_DJANGO_DB", "sqlite"))
        if connection.vendor == "mysql":
            self.assertIn("MariaDB", connection.mysql_server_info)

    def test_malformed_settings_are_check_errors(self):
        cases = [
            ("not a dict", "must be a dict"),
            ({"TARGETT": "x"}, "unknown keys TARGETT"),
            ({"BACKEND": "grpc"}, "BACKEND"),
            ({"TARGET": "no-port"}, "host:port"),
            ({"TIMEOUT": -1}, "timeout"),
            ({"TTL": "1h"}, "TTL"),
            ({"KEYS": [KEY]}, "in-process"),
            ({"BACKEND": "in-process"}, "needs keys"),
            ({"BACKEND": "in-process", "KEYS": ["not a key"]}, "Fernet key"),
            ({"BACKEND": "in-process", "KEYS": [KEY], "TARGET": "localhost:1"}, "TARGET"),
        ]
        for value, message in cases:
            with self.subTest(value=value), override_settings(FERNET_SIDECAR=value):
                errors = checks.check_settings()
                self.assertEqual([e.id for e in errors], ["fernet_sidecar.E001"])
                self.assertIn(message, errors[0].msg)
                self.assertNotIn("not a key", errors[0].msg)

    def test_good_settings_pass(self):
        for value in [{}, {"TARGET": "unix:///run/fernet/fernet.sock", "TIMEOUT": 2.5, "TTL": 3600}, {"BACKEND": "in-process", "KEYS": [KEY]}]:
            with self.subTest(value=value), override_settings(FERNET_SIDECAR=value):
                # No gRPC channel: a preloading server forks after its checks.
                with mock.patch("grpc.insecure_channel") as channel:
                    self.assertEqual(checks.check_settings(), [])
                channel.assert_not_called()

    def test_check_runs_them(self):
        with override_settings(FERNET_SIDECAR={"TARGETT": "x"}):
            errors = django_checks.run_checks()
        self.assertIn("fernet_sidecar.E001", [e.id for e in errors])
        with override_settings(FERNET_SIDECAR={"BACKEND": "in-process", "KEYS": [KEY]}):
            self.assertNotIn("fernet_sidecar.W001", [e.id for e in django_checks.run_checks()])
            self.assertIn("fernet_sidecar.W001", [e.id for e in django_checks.run_checks(include_deployment_checks=True)])

    def test_deploy_warns_about_in_process_and_an_unreachable_sidecar(self):
        with override_settings(FERNET_SIDECAR={"BACKEND": "in-process", "KEYS": [KEY]}):
            self.assertEqual([w.id for w in checks.check_deploy()], ["fernet_sidecar.W001"])
        with override_settings(FERNET_SIDECAR={"TARGET": "unix:///nonexistent/dir/fernet.sock"}):
            warnings = checks.check_deploy()
            self.assertEqual([w.id for w in warnings], ["fernet_sidecar.W002"])
            self.assertIn("unix:///nonexistent/dir/fernet.sock", warnings[0].msg)
        with override_settings(FERNET_SIDECAR={"TARGET": env.get("UNIX_TARGET")}):
            self.assertEqual(checks.check_deploy(), [])

    def test_the_backend_follows_the_setting(self):
        with override_settings(FERNET_SIDECAR={"BACKEND": "in-process", "KEYS": [KEY]}):
            self.assertEqual(conf.fernet().status().primary_key_id, key_id(KEY))
        self.assertNotEqual(conf.fernet().status().primary_key_id, key_id(KEY))


class Status(TestCase):
    def test_status_names_the_key_ids(self):
        out = io.StringIO()
        call_command("fernet_status", stdout=out)
        text = out.getvalue()
        self.assertIn(key_id(env.get("PRIMARY_KEY")), text)
        self.assertIn(key_id(env.get("OLD_KEY")), text)
        self.assertIn("reachable        yes", text)
        self.assertIn("in-process" if IN_PROCESS else "sidecar", text)
        self.assertNotIn(env.get("PRIMARY_KEY"), text)

    @override_settings(FERNET_SIDECAR={"TARGET": "unix:///nonexistent/dir/fernet.sock", "TIMEOUT": 2.0})
    def test_status_fails_when_unreachable(self):
        with self.assertRaisesRegex(CommandError, "not reachable"):
            call_command("fernet_status", stdout=io.StringIO())


def reencrypt(*args, **options):
    """call_command("fernet_reencrypt"): (exit status, output)."""
    out = io.StringIO()
    try:
        call_command("fernet_reencrypt", *args, stdout=out, **options)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


class ReEncryptCommand(TestCase):
    def setUp(self):
        self.primary, self.old = keys()

    def seed_old_rows(self, n):
        notes = Note.objects.bulk_create([Note(body="body %d" % i) for i in range(n)])
        notes = list(Note.objects.order_by("pk"))
        for note in notes:
            set_raw(Note, "body", note.pk, self.old.encrypt(note.body.encode()).decode())
        return notes

    def test_check_rotate_check(self):
        notes = self.seed_old_rows(25)
        Note.objects.create(body=None)
        before = [raw(Note, "body", n.pk) for n in notes]
        status, out = reencrypt("djangotests.Note", "--check")
        self.assertEqual(status, 3, out)
        self.assertIn("under decrypt-only key %s" % key_id(env.get("OLD_KEY")), out)
        self.assertRegex(out, r"under decrypt-only key \w+ +25")
        self.assertRegex(out, r"NULL +1")
        self.assertEqual([raw(Note, "body", n.pk) for n in notes], before)

        status, out = reencrypt("djangotests.Note.body", "--batch-size", "7")
        self.assertEqual(status, 0, out)
        self.assertRegex(out, r"rows written +25")
        self.assertIn("last pk", out)  # a progress line per batch
        for note in notes:
            self.assertEqual(self.primary.decrypt(raw(Note, "body", note.pk).encode()), note.body.encode())
        self.assertEqual(reencrypt("djangotests.Note", "--check")[0], 0)

    def test_progress_on_a_terminal_is_one_line(self):
        self.seed_old_rows(25)

        class Terminal(io.StringIO):
            def isatty(self):
                return True

        out = Terminal()
        call_command("fernet_reencrypt", "djangotests.Note", "--batch-size", "10", stdout=out)
        progress = [line for line in out.getvalue().split("\n") if "last pk" in line]
        self.assertEqual(len(progress), 1, out.getvalue())
        progress = progress[0]
        self.assertEqual(progress.count("\r"), 3)  # one per batch, on one line
        self.assertIn("25 rows, 25 re-encrypted, 25 written", progress)

    def test_dry_run_writes_nothing(self):
        notes = self.seed_old_rows(3)
        before = [raw(Note, "body", n.pk) for n in notes]
        status, out = reencrypt("djangotests.Note", "--dry-run")
        self.assertEqual(status, 3)
        self.assertRegex(out, r"to re-encrypt +3")
        self.assertEqual([raw(Note, "body", n.pk) for n in notes], before)

    def test_undecryptable_rows_are_reported_and_left_alone(self):
        notes = self.seed_old_rows(2)
        stranger = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
        set_raw(Note, "body", notes[1].pk, stranger)
        status, out = reencrypt("djangotests.Note")
        self.assertEqual(status, 3)
        self.assertRegex(out, r"undecryptable \(INVALID_SIGNATURE\) +1")
        self.assertIn("undecryptable pks %s" % notes[1].pk, " ".join(out.split()))
        self.assertNotIn(stranger, out)
        self.assertEqual(raw(Note, "body", notes[1].pk), stranger)

    def test_encrypt_plaintext(self):
        device = Device.objects.create(totp_secret="x")
        set_raw(Device, "totp_secret", device.pk, "JBSWY3DPEHPK3PXP")
        status, out = reencrypt("djangotests.Device")
        self.assertEqual(status, 3)
        self.assertRegex(out, r"legacy plaintext +1")
        status, out = reencrypt("djangotests.Device", "--encrypt-plaintext")
        self.assertEqual(status, 0, out)
        self.assertEqual(self.primary.decrypt(raw(Device, "totp_secret", device.pk).encode()), b"JBSWY3DPEHPK3PXP")
        self.assertNotIn("JBSWY3DPEHPK3PXP", out)

    def test_debug_logs_no_value(self):
        from django.db import reset_queries

        note = self.seed_old_rows(1)[0]
        old_token = raw(Note, "body", note.pk)
        device = Device.objects.create(totp_secret="x")
        set_raw(Device, "totp_secret", device.pk, "JBSWY3DPEHPK3PXP")
        reset_queries()
        with override_settings(DEBUG=True), self.assertLogs("django.db.backends", "DEBUG") as logs:
            logging.getLogger("django.db.backends").debug("(the log is captured)")
            status, out = reencrypt("djangotests.Note", "djangotests.Device", "--encrypt-plaintext")
            logged = list(connection.queries)
        self.assertEqual(status, 0, out)
        values = ["JBSWY3DPEHPK3PXP", old_token, raw(Note, "body", note.pk), raw(Device, "totp_secret", device.pk)]
        for value in values:
            self.assertNotIn(value, repr(logged))
            self.assertNotIn(value, "\n".join(logs.output))

    def test_every_field_by_default_and_bad_labels(self):
        status, out = reencrypt()
        self.assertEqual(status, 0, out)
        for name in ["djangotests.Account.secret", "djangotests.Account.data", "djangotests.Device.totp_secret", "djangotests.Note.body"]:
            self.assertIn(name, out)
        for label, message in [("nope", "No installed app"), ("djangotests.Nope", "Nope"), ("djangotests.Account.nope", "no field"), ("djangotests.Account.name", "not an encrypted field")]:
            with self.subTest(label=label):
                with self.assertRaises((CommandError, LookupError)) as caught:
                    call_command("fernet_reencrypt", label, stdout=io.StringIO())
                self.assertIn(message, str(caught.exception))


class NotesMigratedElsewhere:
    """A database router that migrates Note in the other database only, and
    leaves its writes to the default one."""

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if model_name == "note":
            return db == "other"
        return None


class NotesElsewhere(NotesMigratedElsewhere):
    """A database router that sends Note's reads and writes to the other
    database too."""

    def db_for_read(self, model, **hints):
        return "other" if model._meta.model_name == "note" else None

    db_for_write = db_for_read


class NotesNowhere:
    """A database router that allows Note in no database."""

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return False if model_name == "note" else None


@contextlib.contextmanager
def walked_aliases():
    """A context manager whose value lists the database aliases
    fernet_reencrypt walks a field in, as it walks them."""
    aliases = []

    def spy(model, field, using, **options):
        aliases.append(using)
        return walk_field(model, field, using, **options)

    with mock.patch.object(fernet_reencrypt, "walk_field", spy):
        yield aliases


@override_settings(DATABASE_ROUTERS=["tests.djangotests.suite_commands.NotesElsewhere"])
class ReEncryptWithRouters(TestCase):
    """Two databases, and routers that send Note to the other one: the
    command walks each field once, in the database its writes go to, and a
    field it did not walk is never reported done."""

    databases = {"default", "other"}

    def setUp(self):
        self.primary, self.old = keys()
        # The table exists in both (the test databases were made without
        # routers); only other's is Note's, as far as the routers say.
        self.note = Note.objects.create(body="routed")
        self.assertEqual(self.note._state.db, "other")
        set_raw(Note, "body", self.note.pk, self.old.encrypt(b"routed").decode(), using="other")
        self.token = raw(Note, "body", self.note.pk, using="other")

    def test_a_field_whose_writes_go_elsewhere_is_not_done(self):
        for args in [("--check",), ("--dry-run",), ()]:
            with self.subTest(args=args), walked_aliases() as aliases:
                status, out = reencrypt("djangotests.Note", "--database", "default", *args)
                self.assertEqual(status, 3, out)
                self.assertIn("djangotests.Note.body: not walked, its writes go to other, not default: run with --database other", out)
                self.assertIn("1 field(s) not walked: djangotests.Note.body", out)
                self.assertNotIn("every row is under the primary key", out)
                self.assertEqual(aliases, [])
                self.assertEqual(raw(Note, "body", self.note.pk, using="other"), self.token)

    def test_each_field_where_its_writes_go_by_default(self):
        status, out = reencrypt("djangotests.Note", "--check")
        self.assertEqual(status, 3, out)
        self.assertIn("djangotests.Note.body in other (djangotests_note.body)", out)
        self.assertNotIn("djangotests.Note.body in default", out)
        self.assertRegex(out, r"under decrypt-only key \w+ +1")

        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Note", "djangotests.Device")
        self.assertEqual(status, 0, out)
        self.assertEqual(aliases, ["other", "default"])
        self.assertEqual(self.primary.decrypt(raw(Note, "body", self.note.pk, using="other").encode()), b"routed")
        self.assertEqual(reencrypt("djangotests.Note", "--check")[0], 0)
        self.assertEqual(reencrypt("djangotests.Note", "--check", "--database", "other")[0], 0)

    def test_a_model_the_routers_allow_in_both_is_walked_where_its_writes_go(self):
        device = Device.objects.using("other").create(totp_secret="x")
        token = self.old.encrypt(b"x").decode()
        set_raw(Device, "totp_secret", device.pk, token, using="other")
        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Device", "--check")
        self.assertEqual(status, 0, out)
        self.assertEqual(aliases, ["default"])
        self.assertIn("djangotests.Device.totp_secret in default (djangotests_device.totp_secret)", out)
        self.assertIn("djangotests.Device.totp_secret: not walked in other: its writes go to default", out)
        self.assertEqual(reencrypt("djangotests.Device")[0], 0)
        self.assertEqual(raw(Device, "totp_secret", device.pk, using="other"), token)

    def test_a_model_the_routers_allow_nowhere_is_not_done(self):
        for args in [(), ("--database", "default")]:
            with self.subTest(args=args), override_settings(DATABASE_ROUTERS=["tests.djangotests.suite_commands.NotesNowhere"]):
                status, out = reencrypt("djangotests.Note", "--check", *args)
                self.assertEqual(status, 3, out)
                self.assertIn("djangotests.Note.body: not walked, the database routers allow it in no database", out)

    @override_settings(DATABASE_ROUTERS=["tests.djangotests.suite_commands.NotesMigratedElsewhere"])
    def test_writes_where_the_routers_do_not_migrate_are_not_done(self):
        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Note", "--check")
        self.assertEqual(status, 3, out)
        self.assertEqual(aliases, [])
        self.assertIn("djangotests.Note.body: not walked, the database routers send its writes to default (db_for_write) but migrate it in other only", out)

    def test_bad_alias(self):
        with self.assertRaisesRegex(CommandError, "no database alias 'nope'"):
            call_command("fernet_reencrypt", "--database", "nope", stdout=io.StringIO())

    def test_pushgateway_with_several_databases(self):
        # Each field is walked in one database: their groups (table, column) differ.
        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Note", "djangotests.Device", "--pushgateway", "http://127.0.0.1:9", stderr=io.StringIO())
        self.assertEqual(status, 0, out)
        self.assertEqual(aliases, ["other", "default"])
        set_raw(Note, "body", self.note.pk, self.token, using="other")

        # Two models of one table, walked in two databases, would share one.
        with isolate_apps("tests.djangotests"):

            class NoteCopy(models.Model):
                body = EncryptedTextField(null=True)

                class Meta:
                    app_label = "djangotests"
                    db_table = Note._meta.db_table
                    managed = False

        both = [(Note, Note._meta.get_field("body")), (NoteCopy, NoteCopy._meta.get_field("body"))]
        with mock.patch.object(fernet_reencrypt, "encrypted_fields", return_value=both):
            with self.assertRaisesRegex(CommandError, "djangotests.Note.body in other and djangotests.NoteCopy.body in default are both djangotests_note.body"):
                call_command("fernet_reencrypt", "--pushgateway", "http://127.0.0.1:9", stdout=io.StringIO())
        self.assertEqual(raw(Note, "body", self.note.pk, using="other"), self.token)


class ReEncryptWithAReplica(TestCase):
    """Two databases and no routers, the second a replica the app reads by
    hand (.using("other")): the command walks the default database, where
    Django sends every write, and neither reads nor writes the replica."""

    databases = {"default", "other"}

    def test_the_replica_is_neither_read_nor_written(self):
        primary, old = keys()
        note = Note.objects.create(body="x")
        set_raw(Note, "body", note.pk, old.encrypt(b"x").decode())
        # The replica, lagging: more rows, all under the old key.
        replica = [Note.objects.using("other").create(body="r") for _ in range(3)]
        for row in replica:
            set_raw(Note, "body", row.pk, old.encrypt(b"r").decode(), using="other")
        tokens = [raw(Note, "body", row.pk, using="other") for row in replica]

        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Note", "--check")
        self.assertEqual(status, 3, out)
        self.assertEqual(aliases, ["default"])
        self.assertRegex(out, r"under decrypt-only key \w+ +1\n")
        self.assertIn("1 row(s) would be left off the primary key", out)
        self.assertIn("djangotests.Note.body: not walked in other: its writes go to default, and a replica follows them by replication", out)

        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Note")
        self.assertEqual(status, 0, out)
        self.assertEqual(aliases, ["default"])
        self.assertNotIn("in other (", out)
        self.assertEqual(primary.decrypt(raw(Note, "body", note.pk).encode()), b"x")
        self.assertEqual([raw(Note, "body", row.pk, using="other") for row in replica], tokens)

        # Asked for the replica itself, it names the database to walk instead.
        with walked_aliases() as aliases:
            status, out = reencrypt("djangotests.Note", "--database", "other")
        self.assertEqual(status, 3, out)
        self.assertEqual(aliases, [])
        self.assertIn("djangotests.Note.body: not walked, its writes go to default, not other: run with --database default", out)
        self.assertEqual([raw(Note, "body", row.pk, using="other") for row in replica], tokens)


class MigrationOperations(TransactionTestCase):
    def run_operation(self, operation, backwards=False, atomic=False):
        """Runs operation as a migration with this atomic would."""
        state = ProjectState.from_apps(__import__("django.apps", fromlist=["apps"]).apps)
        with connection.schema_editor(atomic=atomic) as editor:
            if backwards:
                operation.database_backwards("djangotests", editor, state, state)
            else:
                operation.database_forwards("djangotests", editor, state, state)

    def test_reencrypt_and_encrypt_plaintext(self):
        primary, old = keys()
        note = Note.objects.create(body="x")
        token = old.encrypt(b"note").decode()
        set_raw(Note, "body", note.pk, token)
        self.run_operation(ReEncrypt("djangotests", "Note", "body"), backwards=True)
        self.assertEqual(raw(Note, "body", note.pk), token)  # backwards: a no-op
        self.run_operation(ReEncrypt("djangotests", "Note", "body"))
        self.assertEqual(primary.decrypt(raw(Note, "body", note.pk).encode()), b"note")

        device = Device.objects.create(totp_secret="x")
        set_raw(Device, "totp_secret", device.pk, "JBSWY3DPEHPK3PXP")
        with self.assertLogs("fernet_sidecar.django", "WARNING") as logs:
            self.run_operation(ReEncrypt("djangotests", "Device", "totp_secret"))
        self.assertIn("legacy plaintext 1", logs.output[0])
        self.assertNotIn("JBSWY3DPEHPK3PXP", logs.output[0])
        self.assertEqual(raw(Device, "totp_secret", device.pk), "JBSWY3DPEHPK3PXP")
        self.run_operation(EncryptPlaintext("djangotests", "Device", "totp_secret"))
        self.assertEqual(primary.decrypt(raw(Device, "totp_secret", device.pk).encode()), b"JBSWY3DPEHPK3PXP")

    def test_refused_inside_the_migration_transaction(self):
        _, old = keys()
        note = Note.objects.create(body="x")
        token = old.encrypt(b"note").decode()
        set_raw(Note, "body", note.pk, token)
        if connection.features.can_rollback_ddl:  # PostgreSQL, SQLite
            for operation in [ReEncrypt("djangotests", "Note", "body"), EncryptPlaintext("djangotests", "Device", "totp_secret")]:
                with self.subTest(operation=operation.describe()):
                    with self.assertRaisesRegex(TransactionManagementError, "atomic = False on the Migration class"):
                        self.run_operation(operation, atomic=True)
            self.assertEqual(raw(Note, "body", note.pk), token)
        else:  # MariaDB: Django runs no migration in a transaction
            self.run_operation(ReEncrypt("djangotests", "Note", "body"), atomic=True)
            self.assertNotEqual(raw(Note, "body", note.pk), token)

    def test_deconstruct_and_describe(self):
        op = ReEncrypt("accounts", "Account", "totp_secret", batch_size=50)
        self.assertEqual(op.deconstruct(), ("ReEncrypt", ["accounts", "Account", "totp_secret"], {"batch_size": 50}))
        self.assertTrue(op.reversible)
        self.assertIn("accounts.Account.totp_secret", op.describe())
        self.assertEqual(EncryptPlaintext("a", "B", "c").deconstruct()[0], "EncryptPlaintext")


class WalkOverTheDriver(TransactionTestCase):
    """fernet_sidecar._walk over the bare DB-API connection under Django, in
    the driver's own paramstyle (psycopg2: pyformat, MySQLdb: format,
    sqlite3: qmark), committing itself: how Flask's command drives it."""

    def test_walk(self):
        from fernet_sidecar._walk import Database, walk

        primary, old = keys()
        notes = Note.objects.bulk_create([Note(body="n%d" % i) for i in range(12)])
        notes = list(Note.objects.order_by("pk"))
        with transaction.atomic():
            for note in notes:
                set_raw(Note, "body", note.pk, old.encrypt(note.body.encode()).decode())
        connection.ensure_connection()
        db = Database(connection.connection, paramstyle=connection.Database.paramstyle, quote=connection.ops.quote_name)
        report = walk(db, conf.fernet(), Note._meta.db_table, "body", "id", batch_size=5)
        self.assertEqual((report.rotated, report.written, report.pending()), (12, 12, 0))
        self.assertEqual([primary.decrypt(raw(Note, "body", n.pk).encode()).decode() for n in notes], [n.body for n in notes])


class ReEncryptWhileTheAppWrites(TransactionTestCase):
    """fernet_reencrypt in small batches while another thread saves rows
    through the ORM: every row ends as the app last wrote it, under the
    primary key."""

    rows = 300

    def test_no_write_is_lost(self):
        primary, old = keys()
        Note.objects.bulk_create([Note(body="seed %d" % i) for i in range(self.rows)])
        pks = list(Note.objects.order_by("pk").values_list("pk", flat=True))
        with transaction.atomic():
            for pk in pks:
                set_raw(Note, "body", pk, old.encrypt(b"seed").decode())
        last = {pk: "seed" for pk in pks}
        walking = threading.Event()
        stop = threading.Event()
        writes_during_the_walk = []
        failures = []

        def app():
            rng = random.Random(1)
            n = 0
            try:
                while not stop.is_set():
                    pk = rng.choice(pks)
                    n += 1
                    value = "app write %d" % n
                    if n % 2:
                        Note.objects.filter(pk=pk).update(body=value)
                    else:
                        Note(pk=pk, body=value).save()
                    last[pk] = value
                    if walking.is_set():
                        writes_during_the_walk.append(pk)
                    time.sleep(0.001)  # an app, not a busy loop on the write lock
            except Exception as exc:  # reported by the main thread
                failures.append(exc)
            finally:
                connections.close_all()

        class AppWritesBetweenBatches(io.StringIO):
            """The command's output: after each batch's progress line it
            waits for the app to write a row, so the two interleave."""

            def write(self, text):
                if "last pk" in text:
                    seen = len(writes_during_the_walk)
                    for _ in range(500):
                        if len(writes_during_the_walk) > seen or stop.is_set():
                            break
                        time.sleep(0.01)
                return super().write(text)

        writer = threading.Thread(target=app)
        writer.start()
        try:
            walking.set()
            out = AppWritesBetweenBatches()
            try:
                call_command("fernet_reencrypt", "djangotests.Note", "--batch-size", "10", stdout=out)
                status = 0
            except CommandError as exc:
                status = exc.returncode
            walking.clear()
        finally:
            stop.set()
            writer.join()
        self.assertEqual(failures, [])
        self.assertGreater(len(writes_during_the_walk), 0, "the app wrote nothing while the walk ran")
        # A row the app rewrote between read and write is the app's; a rerun
        # finds nothing left either way.
        self.assertIn(status, (0, 3), out.getvalue())
        self.assertEqual(reencrypt("djangotests.Note")[0], 0)
        for pk in pks:
            self.assertEqual(primary.decrypt(raw(Note, "body", pk).encode()).decode(), last[pk], pk)
        self.assertEqual(reencrypt("djangotests.Note", "--check")[0], 0)
