"""The fields: what is stored, what reads, validation, forms and the admin,
lookups, bad data, legacy plaintext, and the batches."""

import datetime
import logging

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import FieldError, ValidationError
from django.db import connection, transaction
from django.db.models.query import QuerySet
from django.conf import settings
from django.test import TestCase, override_settings

from fernet_sidecar import InvalidToken, SidecarUnavailable
from fernet_sidecar.django.fields import EncryptedCharField, EncryptedTextField

from .helpers import counting, keys, raw, set_raw
from .models import Account, Device, Note

UTC = datetime.timezone.utc

VALUES = {
    "secret": "caf\u00e9 \u2603 secret",
    "code": "0123456789",
    "email": "user@example.com",
    "number": -42,
    "flag": False,
    "day": datetime.date(2024, 5, 17),
    "moment": datetime.datetime(2024, 5, 17, 9, 30, 0, 250000, tzinfo=UTC),
    "blob": b"\x00\xffbytes",
    "data": {"a": [1, 2, None], "b": "\u00e9"},
}

# What django-fernet-encrypted-fields puts in its tokens for VALUES
# (str(value) as UTF-8), and for JSON the whole JSON text.
PLAINTEXTS = {
    "secret": "caf\u00e9 \u2603 secret".encode(),
    "code": b"0123456789",
    "email": b"user@example.com",
    "number": b"-42",
    "flag": b"False",
    "day": b"2024-05-17",
    "moment": b"2024-05-17 09:30:00.250000+00:00",
    "blob": b"\x00\xffbytes",
    "data": b'{"a": [1, 2, null], "b": "\\u00e9"}',
}


class StoredValues(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.primary, cls.old = keys()

    def test_every_field_round_trips_as_a_standard_token(self):
        account = Account.objects.create(name="a", **VALUES)
        read = Account.objects.get(pk=account.pk)
        for name, value in VALUES.items():
            with self.subTest(field=name):
                self.assertEqual(getattr(read, name), value)
                stored = raw(Account, name, account.pk)
                self.assertIsInstance(stored, str)
                self.assertEqual(self.primary.decrypt(stored.encode()), PLAINTEXTS[name])

    def test_columns_python_fernet_wrote_read_under_either_key(self):
        account = Account.objects.create(name="a")
        for key_name, fernet in [("primary", self.primary), ("old", self.old)]:
            for name, plaintext in PLAINTEXTS.items():
                set_raw(Account, name, account.pk, fernet.encrypt(plaintext).decode())
            read = Account.objects.get(pk=account.pk)
            for name, value in VALUES.items():
                with self.subTest(key=key_name, field=name):
                    self.assertEqual(getattr(read, name), value)

    def test_booleans_and_zero_and_empty_are_values_not_null(self):
        account = Account.objects.create(name="a", secret="", number=0, flag=True, data=[])
        read = Account.objects.get(pk=account.pk)
        self.assertEqual((read.secret, read.number, read.flag, read.data), ("", 0, True, []))
        self.assertEqual(self.primary.decrypt(raw(Account, "flag", account.pk).encode()), b"True")

    def test_null_is_null(self):
        account = Account.objects.create(name="a")
        for name in VALUES:
            with self.subTest(field=name):
                self.assertIsNone(raw(Account, name, account.pk))
                self.assertIsNone(getattr(Account.objects.get(pk=account.pk), name))

    def test_a_naive_datetime_written_without_offset_reads_as_utc(self):
        account = Account.objects.create(name="a")
        set_raw(Account, "moment", account.pk, self.primary.encrypt(b"2024-05-17 09:30:00").decode())
        self.assertEqual(Account.objects.get(pk=account.pk).moment, datetime.datetime(2024, 5, 17, 9, 30, tzinfo=UTC))

    def test_update_and_save_store_tokens(self):
        account = Account.objects.create(name="a", secret="one")
        Account.objects.filter(pk=account.pk).update(secret="two")
        self.assertEqual(self.primary.decrypt(raw(Account, "secret", account.pk).encode()), b"two")
        account.refresh_from_db()
        self.assertEqual(account.secret, "two")
        account.secret = "three"
        account.save(update_fields=["secret"])
        self.assertEqual(Account.objects.get(pk=account.pk).secret, "three")

    def test_an_sql_expression_is_refused(self):
        from django.db.models import Value

        account = Account(name="a", secret=Value("plain"))
        with self.assertRaisesRegex(TypeError, "not an SQL expression"):
            account.save()

    def test_update_encrypts_every_field(self):
        account = Account.objects.create(name="a")
        Account.objects.filter(pk=account.pk).update(**VALUES)
        read = Account.objects.get(pk=account.pk)
        for name, value in VALUES.items():
            with self.subTest(field=name):
                self.assertEqual(getattr(read, name), value)
                self.assertEqual(self.primary.decrypt(raw(Account, name, account.pk).encode()), PLAINTEXTS[name])

    def test_update_refuses_an_sql_expression(self):
        from django.db.models import Case, F, Value, When
        from django.db.models.functions import Concat, Upper

        account = Account.objects.create(name="a", secret="kept")
        stored = raw(Account, "secret", account.pk)
        for expression in [
            Value("plaintext"),
            F("name"),
            Upper("name"),
            Concat(Value("x"), "name"),
            Case(When(pk=account.pk, then=Value("plaintext")), default=Value(None)),
        ]:
            with self.subTest(expression=expression):
                # (update() marks the transaction for rollback on error.)
                with self.assertRaisesRegex(TypeError, "djangotests.Account.secret is encrypted.*not an SQL expression"), transaction.atomic():
                    Account.objects.filter(pk=account.pk).update(secret=expression)
                self.assertEqual(raw(Account, "secret", account.pk), stored)
        # A value the field prepares itself is encrypted like a plain one.
        Account.objects.filter(pk=account.pk).update(secret=Value("v", output_field=Account._meta.get_field("secret")), code=None)
        self.assertEqual(self.primary.decrypt(raw(Account, "secret", account.pk).encode()), b"v")


class Validation(TestCase):
    def test_limits_apply_to_the_value_not_the_token(self):
        ok = Account(name="a", code="x" * 10, number=2**31 - 1, email="a@example.com")
        ok.full_clean()
        for field, value in [("code", "x" * 11), ("number", 2**31), ("number", -(2**31) - 1), ("email", "not an email")]:
            with self.subTest(field=field, value=value):
                bad = Account(name="a", **{field: value})
                with self.assertRaises(ValidationError) as caught:
                    bad.full_clean()
                self.assertIn(field, caught.exception.message_dict)

    def test_a_model_form_round_trip_encrypts_once(self):
        class AccountForm(forms.ModelForm):
            class Meta:
                model = Account
                fields = ["name", "secret", "code", "email", "number", "flag", "day", "moment", "data"]

        # (A form shows datetimes to the second.)
        values = dict(VALUES, moment=VALUES["moment"].replace(microsecond=0))
        account = Account.objects.create(name="a", **values)
        form = AccountForm(instance=Account.objects.get(pk=account.pk))
        self.assertEqual(form.initial["secret"], VALUES["secret"])
        # Post back exactly what the form showed.
        data = {name: form[name].value() for name in form.fields}
        data["flag"] = "false"
        posted = AccountForm(data, instance=Account.objects.get(pk=account.pk))
        self.assertTrue(posted.is_valid(), posted.errors)
        posted.save()
        read = Account.objects.get(pk=account.pk)
        for name in ["secret", "code", "email", "number", "day", "moment", "data"]:
            with self.subTest(field=name):
                self.assertEqual(getattr(read, name), values[name])
        primary, _ = keys()
        self.assertEqual(primary.decrypt(raw(Account, "secret", account.pk).encode()), PLAINTEXTS["secret"])

    def test_the_admin_shows_and_saves_plaintext(self):
        User.objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.login(username="admin", password="pw")
        account = Account.objects.create(name="a", secret="shown in the form", code="c1")
        page = self.client.get("/admin/djangotests/account/%d/change/" % account.pk)
        self.assertContains(page, "shown in the form")
        self.assertNotContains(page, raw(Account, "secret", account.pk))
        response = self.client.post(
            "/admin/djangotests/account/%d/change/" % account.pk,
            {"name": "a", "secret": "changed", "code": "c2", "email": "", "number": "7", "flag": "unknown", "day": "", "moment_0": "", "moment_1": "", "data": "null"},
        )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        read = Account.objects.get(pk=account.pk)
        self.assertEqual((read.secret, read.code, read.number), ("changed", "c2", 7))


class Lookups(TestCase):
    def test_lookups_raise_field_error_saying_why(self):
        for lookup in [{"secret": "x"}, {"secret__exact": "x"}, {"secret__iexact": "x"}, {"secret__icontains": "x"}, {"number__gt": 1}, {"data__a": 1}, {"secret__in": ["x"]}, {"data": {}}]:
            with self.subTest(lookup=lookup):
                with self.assertRaisesRegex(FieldError, "is encrypted.*isnull"):
                    list(Account.objects.filter(**lookup))

    def test_isnull_works(self):
        a = Account.objects.create(name="a", secret="s")
        b = Account.objects.create(name="b")
        self.assertEqual(list(Account.objects.filter(secret__isnull=True)), [b])
        self.assertEqual(list(Account.objects.filter(secret__isnull=False)), [a])

    def test_equal_to_none_is_isnull(self):
        a = Account.objects.create(name="a", secret="s", data={"k": 1})
        b = Account.objects.create(name="b")
        for lookup in ["secret", "secret__exact", "secret__iexact", "data"]:
            with self.subTest(lookup=lookup):
                self.assertEqual(list(Account.objects.filter(**{lookup: None})), [b])
                self.assertEqual(list(Account.objects.exclude(**{lookup: None})), [a])

    def test_unique_and_index_are_check_errors(self):
        for kwargs in [{"unique": True}, {"db_index": True}, {"primary_key": True}]:
            with self.subTest(kwargs=kwargs):
                field = EncryptedTextField(**kwargs)
                field.set_attributes_from_name("x")
                self.assertIn("fernet_sidecar.E102", [e.id for e in field.check()])
        field = EncryptedCharField(max_length=5, legacy_plaintext="rot13")
        field.set_attributes_from_name("x")
        self.assertIn("fernet_sidecar.E101", [e.id for e in field.check()])

    def test_meta_options_that_compare_values_are_check_errors(self):
        from django.db import models
        from django.db.models.functions import Lower
        from django.test.utils import isolate_apps

        options = {
            "unique_together": {"unique_together": [("name", "secret")]},
            "index_together": {"index_together": [("name", "secret")]},
            "indexes": {"indexes": [models.Index(fields=["name", "-secret"], name="by_secret")]},
            "indexes (expression)": {"indexes": [models.Index(Lower("secret"), name="by_lower_secret")]},
            "constraints": {"constraints": [models.UniqueConstraint(fields=["name", "secret"], name="one_secret")]},
        }
        for label, meta in options.items():
            with self.subTest(option=label), isolate_apps("tests.djangotests"):
                model = type("Checked", (models.Model,), {
                    "__module__": __name__,
                    "name": models.CharField(max_length=10),
                    "secret": EncryptedTextField(),
                    "Meta": type("Meta", (), dict(meta, app_label="djangotests")),
                })
                errors = [e for e in model.check() if e.id == "fernet_sidecar.E102"]
                self.assertEqual(len(errors), 1, errors)
                self.assertIn("Meta.%s" % label.split()[0], errors[0].msg)
                self.assertIs(errors[0].obj, model._meta.get_field("secret"))
        with isolate_apps("tests.djangotests"):
            model = type("Fine", (models.Model,), {
                "__module__": __name__,
                "name": models.CharField(max_length=10),
                "secret": EncryptedTextField(),
                "Meta": type("Meta", (), {"app_label": "djangotests", "unique_together": [("name",)], "indexes": [models.Index(fields=["name"], name="by_name")]}),
            })
            self.assertEqual([e for e in model.check() if e.id.startswith("fernet_sidecar")], [])

    def test_deconstruct_keeps_legacy_plaintext(self):
        field = Device._meta.get_field("totp_secret")
        _, path, _, kwargs = field.deconstruct()
        self.assertEqual(path, "fernet_sidecar.django.fields.EncryptedCharField")
        self.assertEqual(kwargs["legacy_plaintext"], "totp-base32")


class BadData(TestCase):
    def test_a_value_that_does_not_decrypt_names_model_field_and_pk(self):
        from cryptography.fernet import Fernet

        good = Account.objects.create(name="good", secret="fine")
        bad = Account.objects.create(name="bad", secret="fine")
        stranger = Fernet(Fernet.generate_key()).encrypt(b"under a key nobody loaded").decode()
        set_raw(Account, "secret", bad.pk, stranger)
        for query in [
            lambda: list(Account.objects.all()),
            lambda: Account.objects.get(pk=bad.pk),
            lambda: list(Account.objects.values("pk", "secret")),
            lambda: list(Account.objects.iterator()),
        ]:
            with self.assertRaises(InvalidToken) as caught:
                query()
            message = str(caught.exception)
            self.assertIn("djangotests.Account.secret", message)
            self.assertIn("pk=%d" % bad.pk, message)
            self.assertNotIn(stranger, message)
            self.assertEqual(caught.exception.reason, "INVALID_SIGNATURE")
        with self.assertRaisesRegex(InvalidToken, "primary key the query did not select"):
            list(Account.objects.values_list("secret", flat=True))
        self.assertEqual(Account.objects.get(pk=good.pk).secret, "fine")

    def test_the_traceback_holds_no_other_rows_plaintext(self):
        # Error reporters (Sentry, Django's debug page) send every frame's
        # local variables, of the exception and of its causes.
        Account.objects.bulk_create([Account(name=str(i), secret="PLAINTEXT-%d" % i, code="CODE-%d" % i) for i in range(50)])
        bad = Account.objects.get(name="30")
        set_raw(Account, "code", bad.pk, "garbage")
        for query in [lambda: list(Account.objects.all()), lambda: list(Account.objects.values_list("pk", "secret", "code"))]:
            # Not assertRaises: it clears the traceback's frames.
            try:
                query()
            except InvalidToken as caught:
                exc = caught
            else:
                self.fail("no InvalidToken")
            held = []
            while exc is not None:
                tb = exc.__traceback__
                while tb is not None:
                    for name, value in tb.tb_frame.f_locals.items():
                        if isinstance(value, QuerySet):
                            continue  # its repr runs a query of its own: it holds no row
                        if "PLAINTEXT-" in repr(value) or "CODE-" in repr(value):
                            held.append("%s: %s" % (tb.tb_frame.f_code.co_name, name))
                    tb = tb.tb_next
                exc = exc.__cause__ or exc.__context__
            self.assertEqual(held, [])

    def test_garbage_is_never_returned_as_the_value(self):
        account = Account.objects.create(name="a")
        set_raw(Account, "secret", account.pk, "JBSWY3DPEHPK3PXP")  # no legacy_plaintext on this field
        with self.assertRaises(InvalidToken) as caught:
            Account.objects.get(pk=account.pk)
        self.assertEqual(caught.exception.reason, "MALFORMED")


class WithoutTheBatch(TestCase):
    """from_db_value on its own: what a field does without the app's hooks
    (fernet_sidecar.django not in INSTALLED_APPS)."""

    def test_from_db_value(self):
        primary, old = keys()
        field = Account._meta.get_field("number")
        self.assertEqual(field.from_db_value(old.encrypt(b"7").decode(), None, connection), 7)
        self.assertIsNone(field.from_db_value(None, None, connection))
        with self.assertRaisesRegex(InvalidToken, "djangotests.Account.number of a row"):
            field.from_db_value("garbage", None, connection)
        legacy = Device._meta.get_field("totp_secret")
        legacy._legacy_count = 0
        with self.assertLogs("fernet_sidecar.django", logging.WARNING):
            self.assertEqual(legacy.from_db_value("JBSWY3DPEHPK3PXP", None, connection), "JBSWY3DPEHPK3PXP")


class Failures(TestCase):
    def test_ttl_refuses_old_tokens(self):
        import time

        primary, _ = keys()
        account = Account.objects.create(name="a")
        set_raw(Account, "secret", account.pk, primary.encrypt_at_time(b"old", int(time.time()) - 3600).decode())
        self.assertEqual(Account.objects.get(pk=account.pk).secret, "old")
        with override_settings(FERNET_SIDECAR=dict(settings.FERNET_SIDECAR, TTL=60)):
            with self.assertRaises(InvalidToken) as caught:
                Account.objects.get(pk=account.pk)
        self.assertEqual(caught.exception.reason, "EXPIRED")

    def test_a_sidecar_that_is_down_is_not_bad_data(self):
        Account.objects.create(name="a", secret="s")
        with override_settings(FERNET_SIDECAR={"TARGET": "unix:///nonexistent/dir/fernet.sock", "TIMEOUT": 2.0}):
            with self.assertRaises(SidecarUnavailable):
                list(Account.objects.all())
            with self.assertRaises(SidecarUnavailable):
                Account.objects.create(name="b", secret="s")


class LegacyPlaintext(TestCase):
    def test_legacy_values_read_as_themselves_and_save_encrypts_them(self):
        devices = [Device.objects.create() for _ in range(3)]
        for device in devices:
            set_raw(Device, "totp_secret", device.pk, "JBSWY3DPEHPK3PXP")
        field = Device._meta.get_field("totp_secret")
        field._legacy_count = 0
        with self.assertLogs("fernet_sidecar.django", logging.WARNING) as logs:
            read = list(Device.objects.order_by("pk"))
        self.assertEqual([d.totp_secret for d in read], ["JBSWY3DPEHPK3PXP"] * 3)
        self.assertEqual(len(logs.records), 1)  # once, not per row
        self.assertIn("djangotests.Device.totp_secret", logs.output[0])
        self.assertNotIn("JBSWY3DPEHPK3PXP", logs.output[0])
        read[0].save()
        primary, _ = keys()
        self.assertEqual(primary.decrypt(raw(Device, "totp_secret", read[0].pk).encode()), b"JBSWY3DPEHPK3PXP")

    def test_other_bad_values_still_raise(self):
        device = Device.objects.create()
        set_raw(Device, "totp_secret", device.pk, "not base32 at all!")
        with self.assertRaises(InvalidToken):
            Device.objects.get(pk=device.pk)


class Batches(TestCase):
    def test_bulk_create_and_reading_a_thousand_rows(self):
        with counting() as rpcs:
            Note.objects.bulk_create([Note(body="note %d" % i) for i in range(1200)])
        # SQLite inserts 500 rows a statement: still one batch of 1200.
        self.assertEqual(rpcs.rpcs["encrypt_many"], 2)
        self.assertEqual(rpcs.rpcs["encrypt"], 0)
        expected = ["note %d" % i for i in range(1200)]
        reads = {
            "list": lambda: [n.body for n in Note.objects.order_by("pk")],
            "iterator": lambda: [n.body for n in Note.objects.order_by("pk").iterator()],
            "values": lambda: [v["body"] for v in Note.objects.order_by("pk").values("body")],
            "values_list": lambda: list(Note.objects.order_by("pk").values_list("body", flat=True)),
            "slice": lambda: [n.body for n in Note.objects.order_by("pk")[:1200]],
            "raw": lambda: [n.body for n in Note.objects.raw("SELECT * FROM djangotests_note ORDER BY id")],
        }
        for name, read in reads.items():
            with self.subTest(read=name), counting() as rpcs:
                self.assertEqual(read(), expected)
                self.assertEqual(rpcs.rpcs["decrypt_many"], 2)
                self.assertEqual(rpcs.rpcs["decrypt"], 0)

    def test_many_encrypted_fields_share_a_batch(self):
        created = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
        Account.objects.bulk_create([Account(name=str(i), created=created, **VALUES) for i in range(250)])
        with counting() as rpcs:
            accounts = list(Account.objects.all())
        self.assertEqual(len(accounts), 250)
        self.assertEqual(accounts[-1].moment, VALUES["moment"])
        self.assertEqual(accounts[-1].created, created)  # the other converters still run
        # 9 values a row: 111 rows a batch, 2250 values.
        self.assertEqual(rpcs.rpcs["decrypt_many"], 3)

    def test_select_related_and_prefetch_related(self):
        accounts = Account.objects.bulk_create([Account(name=str(i), secret="s%d" % i) for i in range(20)])
        if accounts[0].pk is None:  # backends that do not return ids
            accounts = list(Account.objects.order_by("pk"))
        Device.objects.bulk_create([Device(account=a, totp_secret="t" + a.name) for a in accounts])
        with counting() as rpcs:
            devices = list(Device.objects.select_related("account").order_by("pk"))
        self.assertEqual([(d.totp_secret, d.account.secret) for d in devices], [("t%d" % i, "s%d" % i) for i in range(20)])
        self.assertEqual(rpcs.rpcs["decrypt_many"], 1)
        with counting() as rpcs:
            loaded = list(Account.objects.prefetch_related("devices").order_by("pk"))
        self.assertEqual([a.devices.all()[0].totp_secret for a in loaded], ["t%d" % i for i in range(20)])
        self.assertEqual(rpcs.rpcs["decrypt_many"], 2)  # one per query
        self.assertEqual(rpcs.rpcs["decrypt"], 0)

    def test_save_and_get_make_one_rpc(self):
        with counting() as rpcs:
            account = Account.objects.create(name="a", **VALUES)
        self.assertEqual(dict(rpcs.rpcs), {"encrypt_many": 1})
        with counting() as rpcs:
            Account.objects.get(pk=account.pk)
        self.assertEqual(dict(rpcs.rpcs), {"decrypt_many": 1})
        account.secret = "new"
        with counting() as rpcs:
            account.save()
        self.assertEqual(dict(rpcs.rpcs), {"encrypt_many": 1})

    def test_bulk_update(self):
        notes = Note.objects.bulk_create([Note(body="old %d" % i) for i in range(1200)])
        notes = list(Note.objects.order_by("pk"))
        for note in notes:
            note.body = "new %d" % note.pk
        with counting() as rpcs:
            Note.objects.bulk_update(notes, ["body"], batch_size=400)
        self.assertEqual(rpcs.rpcs["encrypt_many"], 2)
        self.assertEqual(rpcs.rpcs["encrypt"], 0)
        self.assertEqual(notes[0].body, "new %d" % notes[0].pk)  # the objects keep their values
        self.assertEqual([n.body for n in Note.objects.order_by("pk")], ["new %d" % n.pk for n in notes])
        primary, _ = keys()
        self.assertEqual(primary.decrypt(raw(Note, "body", notes[5].pk).encode()), ("new %d" % notes[5].pk).encode())

    def test_a_failed_write_leaves_no_plaintext_behind(self):
        from django.db.models import Value

        from fernet_sidecar.django import fields

        saved = Note.objects.create(body="saved")
        failures = {
            # secret's pre_save() makes its value, then code's fails.
            "save": lambda: Account(name="a", secret="left behind", code=Value("x")).save(),
            # Django refuses the unsaved account before it builds a statement.
            "bulk_create": lambda: Device.objects.bulk_create([Device(totp_secret="left behind", account=Account(name="unsaved"))]),
            "bulk_update": lambda: Note.objects.bulk_update([Note(body="left behind"), saved], ["body"]),
        }
        for name, fail in failures.items():
            with self.subTest(call=name):
                with self.assertRaises((TypeError, ValueError)), transaction.atomic():
                    fail()
                self.assertEqual([p.plaintext for p in fields._pending()], [])

    def test_bulk_update_takes_generators(self):
        Note.objects.bulk_create([Note(body="old %d" % i) for i in range(3)])
        notes = list(Note.objects.order_by("pk"))
        for note in notes:
            note.body = "new %d" % note.pk
        Note.objects.bulk_update((n for n in notes), (f for f in ["body"]))
        self.assertEqual([n.body for n in Note.objects.order_by("pk")], ["new %d" % n.pk for n in notes])
