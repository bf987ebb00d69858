"""fernet_sidecar.sqlalchemy's column types with Debian's SQLAlchemy 1.4,
through the real sidecar, on SQLite and on PostgreSQL (the Go test starts
a server and gives its URL in SIDECAR_TEST_POSTGRES_URL)."""

import time
import unittest

from cryptography.fernet import Fernet

from fernet_sidecar import InProcessFernet, InvalidToken, SidecarError, SidecarFernet, SidecarUnavailable
from fernet_sidecar import sqlalchemy as fs

from . import env

try:
    import sqlalchemy as sa
    from sqlalchemy import orm
    from sqlalchemy.dialects import postgresql, sqlite
except ImportError:  # pragma: no cover - the Go test checks for it first
    sa = None

TOTP = "JBSWY3DPEHPK3PXP"


class Counting:
    """A client that counts the calls made to it, by method."""

    def __init__(self, client):
        self.client = client
        self.calls = {}

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return counted


def models(fernet):
    """A fresh declarative base with the test's models, whose encrypted
    columns use fernet (a callable returning the counting client)."""
    Base = orm.declarative_base()

    class Device(Base):
        __tablename__ = "device"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String(40))
        secret = sa.Column(fs.EncryptedString(200, legacy_plaintext="totp-base32", fernet=fernet))
        note = sa.Column(fs.EncryptedText(fernet=fernet))
        blob = sa.Column(fs.EncryptedBinary(fernet=fernet))
        owner_id = sa.Column(sa.Integer, sa.ForeignKey("owner.id"))

    class Owner(Base):
        __tablename__ = "owner"
        id = sa.Column(sa.Integer, primary_key=True)
        devices = orm.relationship(Device, order_by=Device.id)

    class Strict(Base):
        """No legacy plaintext, and a TTL."""

        __tablename__ = "strict"
        id = sa.Column(sa.Integer, primary_key=True)
        secret = sa.Column(fs.EncryptedString(200, ttl=3600, fernet=fernet))

    return Base, Device, Owner, Strict


class Database:
    """The tests, run once per database by the subclasses below."""

    def url(self):
        raise NotImplementedError

    def make_client(self):
        client = SidecarFernet(env.get("TCP_TARGET"), max_batch_items=int(env.get("MAX_BATCH_ITEMS")), timeout=10)
        self.addCleanup(client.close)
        return client

    def setUp(self):
        if sa is None:
            env.missing("SQLAlchemy (Debian package python3-sqlalchemy)")
        self.primary_key = env.get("PRIMARY_KEY")
        self.primary = Fernet(self.primary_key)
        self.old = Fernet(env.get("OLD_KEY"))
        self.client = Counting(self.make_client())
        self.Base, self.Device, self.Owner, self.Strict = models(lambda: self.client)
        self.engine = sa.create_engine(self.url(), future=True)
        self.addCleanup(self.engine.dispose)
        self.Base.metadata.create_all(self.engine)
        self.addCleanup(self.Base.metadata.drop_all, self.engine)

    def session(self):
        session = orm.Session(self.engine, future=True)
        self.addCleanup(session.close)
        return session

    def stored(self, table, column):
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(sa.text("SELECT %s FROM %s ORDER BY id" % (column, table)))]

    def insert_raw(self, table, **values):
        with self.engine.begin() as conn:
            conn.execute(sa.table(table, *(sa.column(k) for k in values)).insert().values(**values))

    def add_devices(self, n):
        with self.session() as session:
            session.add_all(
                [self.Device(id=i + 1, name="d%d" % i, secret="%s%04d" % (TOTP, i), note="note %d" % i, blob=b"\x00%d" % i) for i in range(n)]
            )
            session.commit()
        self.client.calls.clear()

    # -- what is stored ----------------------------------------------------

    def test_stores_standard_tokens_and_reads_them_back(self):
        with self.session() as session:
            session.add(self.Device(id=1, secret=TOTP, note="caf\u00e9 " * 100, blob=bytes(range(256))))
            session.add(self.Device(id=2))  # None stays NULL
            session.commit()
        secret, note, blob = self.stored("device", "secret")[0], self.stored("device", "note")[0], self.stored("device", "blob")[0]
        self.assertEqual(self.primary.decrypt(secret.encode()), TOTP.encode())
        self.assertEqual(self.primary.decrypt(note.encode()).decode(), "caf\u00e9 " * 100)
        self.assertEqual(self.primary.decrypt(bytes(blob)), bytes(range(256)))
        self.assertEqual(self.stored("device", "secret")[1], None)
        with self.session() as session:
            first, second = session.execute(sa.select(self.Device).order_by(self.Device.id)).scalars().all()
            self.assertEqual((first.secret, first.note, first.blob), (TOTP, "caf\u00e9 " * 100, bytes(range(256))))
            self.assertEqual((second.secret, second.note, second.blob), (None, None, None))

    def test_reads_tokens_python_made_under_any_key(self):
        self.insert_raw("device", id=1, secret=self.primary.encrypt(b"one").decode())
        self.insert_raw("device", id=2, secret=self.old.encrypt(b"two").decode(), blob=self.old.encrypt(b"\x02"))
        with self.session() as session:
            devices = session.execute(sa.select(self.Device).order_by(self.Device.id)).scalars().all()
            self.assertEqual([(d.secret, d.blob) for d in devices], [("one", None), ("two", b"\x02")])

    def test_same_value_twice_gets_two_tokens(self):
        shared = TOTP + "SHARED"
        with self.session() as session:
            session.add_all([self.Device(id=1, secret=shared), self.Device(id=2, secret=shared)])
            session.commit()
        first, second = self.stored("device", "secret")
        self.assertNotEqual(first, second)
        self.assertEqual({self.primary.decrypt(first.encode()), self.primary.decrypt(second.encode())}, {shared.encode()})

    def test_one_value_in_columns_of_two_clients(self):
        """Each column's token is its own client's, even when both columns
        hold the very same value object."""
        keys = [Fernet.generate_key(), Fernet.generate_key()]
        one, other = InProcessFernet([keys[0]]), InProcessFernet([keys[1]])
        Base = orm.declarative_base()

        class Pair(Base):
            __tablename__ = "pair"
            id = sa.Column(sa.Integer, primary_key=True)
            first = sa.Column(fs.EncryptedString(200, fernet=one))
            second = sa.Column(fs.EncryptedString(200, fernet=lambda: other))

        Base.metadata.create_all(self.engine)
        self.addCleanup(Base.metadata.drop_all, self.engine)
        shared = TOTP + "SHARED"
        with self.session() as session:
            session.add(Pair(id=1, first=shared, second=shared))
            session.commit()
        self.assertEqual(Fernet(keys[0]).decrypt(self.stored("pair", "first")[0].encode()), shared.encode())
        self.assertEqual(Fernet(keys[1]).decrypt(self.stored("pair", "second")[0].encode()), shared.encode())
        with self.session() as session:
            pair = session.get(Pair, 1)
            self.assertEqual((pair.first, pair.second), (shared, shared))

    def test_comparisons_other_than_null_tests_are_refused(self):
        self.add_devices(2)
        with self.session() as session:
            session.add(self.Device(id=3))
            session.commit()
        Device = self.Device
        refused = [
            ("==", lambda: Device.secret == TOTP + "0000"),
            ("reversed ==", lambda: TOTP + "0000" == Device.secret),
            ("!=", lambda: Device.note != "note 0"),
            ("in_", lambda: Device.secret.in_([TOTP + "0000"])),
            ("like", lambda: Device.secret.like("JBS%")),
            ("binary ==", lambda: Device.blob == b"\x000"),
            ("filter_by", lambda: sa.select(Device).filter_by(secret=TOTP + "0000")),
            ("Core column", lambda: Device.__table__.c.secret == TOTP + "0000"),
            ("order", lambda: Device.secret.desc()),
        ]
        for name, compare in refused:
            with self.subTest(name):
                with self.assertRaisesRegex(NotImplementedError, "is an encrypted column") as caught:
                    compare()
                self.assertNotIn("JBS", str(caught.exception))
        with self.session() as session:
            for where, ids in [
                (Device.secret == None, [3]),  # noqa: E711 (SQLAlchemy's IS NULL)
                (Device.secret != None, [1, 2]),  # noqa: E711
                (Device.secret.is_(None), [3]),
                (Device.secret.is_not(None), [1, 2]),
            ]:
                self.assertEqual(session.execute(sa.select(Device.id).where(where).order_by(Device.id)).scalars().all(), ids)

    # -- batching ----------------------------------------------------------

    def test_a_flush_encrypts_in_one_call_per_column_type(self):
        self.add_devices(0)
        with self.session() as session:
            session.add_all([self.Device(id=i + 1, secret="%s%04d" % (TOTP, i), note="n", blob=b"b") for i in range(20)])
            session.commit()
        # EncryptedString, EncryptedText and EncryptedBinary: one each.
        self.assertEqual(self.client.calls, {"encrypt_many": 3})

    def test_a_failed_flush_keeps_no_tokens(self):
        self.add_devices(1)
        with self.session() as session:
            session.add(self.Device(id=1, secret=TOTP))  # the primary key is taken
            with self.assertRaises(sa.exc.IntegrityError):
                session.commit()
            self.assertIsNone(fs._flush_tokens.get())

    def test_an_update_encrypts_only_what_changed(self):
        self.add_devices(5)
        before = self.stored("device", "note")
        with self.session() as session:
            device = session.get(self.Device, 3)
            device.secret = "NEWSECRETNEWSECR"
            self.client.calls.clear()
            session.commit()
            self.assertEqual(self.client.calls, {"encrypt_many": 1})
            self.assertEqual(device.secret, "NEWSECRETNEWSECR")  # read back after the commit expired it
        self.assertEqual(self.stored("device", "note"), before)
        self.assertEqual(self.primary.decrypt(self.stored("device", "secret")[2].encode()), b"NEWSECRETNEWSECR")

    def test_a_query_decrypts_in_one_call_per_column_type(self):
        self.add_devices(20)
        expected = ["%s%04d" % (TOTP, i) for i in range(20)]
        queries = [
            ("select entities", lambda s: [d.secret for d in s.execute(sa.select(self.Device).order_by(self.Device.id)).scalars()]),
            ("legacy Query", lambda s: [d.secret for d in s.query(self.Device).order_by(self.Device.id).all()]),
            ("select columns", lambda s: [row.secret for row in s.execute(sa.select(self.Device.id, self.Device.secret).order_by(self.Device.id))]),
            ("select one column", lambda s: s.execute(sa.select(self.Device.secret).order_by(self.Device.id)).scalars().all()),
            (
                "entities and columns",
                lambda s: [d.secret for d, _ in s.execute(sa.select(self.Device, self.Device.note).order_by(self.Device.id)).all()],
            ),
        ]
        for name, query in queries:
            with self.subTest(name), self.session() as session:
                self.client.calls.clear()
                self.assertEqual(query(session), expected)
                self.assertNotIn("decrypt", self.client.calls)
                self.assertLessEqual(self.client.calls.get("decrypt_many", 0), 3)
                self.assertGreaterEqual(self.client.calls.get("decrypt_many", 0), 1)

    def test_loaded_objects_are_clean(self):
        self.add_devices(3)
        with self.session() as session:
            devices = session.execute(sa.select(self.Device)).scalars().all()
            self.assertFalse(session.dirty)
            self.assertFalse(any(orm.attributes.instance_state(d).modified for d in devices))
            self.client.calls.clear()
            session.commit()
            self.assertEqual(self.client.calls, {})

    def test_relationship_loads(self):
        with self.session() as session:
            session.add(self.Owner(id=1, devices=[self.Device(id=i, secret="%s%04d" % (TOTP, i)) for i in range(1, 4)]))
            session.commit()
        expected = ["%s%04d" % (TOTP, i) for i in range(1, 4)]
        for name, option in [("lazy", None), ("selectin", orm.selectinload), ("joined", orm.joinedload)]:
            with self.subTest(name), self.session() as session:
                stmt = sa.select(self.Owner)
                if option:
                    stmt = stmt.options(option(self.Owner.devices))
                owner = session.execute(stmt).unique().scalars().one()
                self.assertEqual([d.secret for d in owner.devices], expected)

    def test_refresh_after_commit_and_get(self):
        self.add_devices(2)
        with self.session() as session:
            device = session.get(self.Device, 1)
            self.assertEqual(device.secret, TOTP + "0000")
            session.commit()  # expires everything
            self.client.calls.clear()
            self.assertEqual(device.note, "note 0")
            self.assertNotIn("decrypt", self.client.calls)

    def test_load_listeners_and_reconstructors_see_plaintexts(self):
        Base = orm.declarative_base()
        client = self.client

        class Copied(Base):
            __tablename__ = "copied"
            id = sa.Column(sa.Integer, primary_key=True)
            secret = sa.Column(fs.EncryptedString(200, fernet=lambda: client))

            @orm.reconstructor
            def remember(self):
                self.on_reconstruct = self.secret

        @sa.event.listens_for(Copied, "load")
        def copy_on_load(obj, context):
            obj.on_load = obj.secret.lower()

        Base.metadata.create_all(self.engine)
        self.addCleanup(Base.metadata.drop_all, self.engine)
        with self.session() as session:
            session.add_all([Copied(id=i, secret="%s%04d" % (TOTP, i)) for i in range(5)])
            session.commit()
        self.client.calls.clear()
        with self.session() as session:
            rows = session.execute(sa.select(Copied).order_by(Copied.id)).scalars().all()
            secrets = ["%s%04d" % (TOTP, i) for i in range(5)]
            self.assertEqual([(c.secret, c.on_reconstruct, c.on_load) for c in rows], [(s, s, s.lower()) for s in secrets])
            self.assertEqual(self.client.calls, {"decrypt_many": 1})
            self.assertFalse(session.dirty)

    def test_a_value_used_before_its_batch_is_decrypted_says_so(self):
        token = self.primary.encrypt(TOTP.encode()).decode()
        pending = fs._PendingToken(self.Device.secret.type, token)
        for use in (str, len, bool, lambda v: v.encode(), lambda v: v == "x", lambda v: "%s" % v):
            with self.assertRaisesRegex(RuntimeError, "before its object finished loading") as caught:
                use(pending)
            self.assertNotIn(token, str(caught.exception))
        self.assertNotIn(token, repr(pending))

    def test_core_and_yield_per_decrypt_value_by_value(self):
        self.add_devices(5)
        expected = ["%s%04d" % (TOTP, i) for i in range(5)]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.Device.__table__.c.secret).order_by(self.Device.id)).scalars().all()
        self.assertEqual(rows, expected)
        self.assertEqual(self.client.calls, {"decrypt": 5})
        with self.session() as session:
            stmt = sa.select(self.Device).order_by(self.Device.id).execution_options(yield_per=2)
            self.assertEqual([d.secret for d in session.execute(stmt).scalars()], expected)

    # -- failures ----------------------------------------------------------

    def test_legacy_plaintext_reads_and_becomes_a_token(self):
        self.insert_raw("device", id=1, secret=TOTP)  # before encryption
        self.insert_raw("device", id=2, secret=self.primary.encrypt(b"NEWNEWNEWNEWNEWN").decode())
        self.insert_raw("device", id=3, secret="jbswy3dpehpk3pxp")  # any case
        with self.session() as session:
            devices = session.execute(sa.select(self.Device).order_by(self.Device.id)).scalars().all()
            self.assertEqual([d.secret for d in devices], [TOTP, "NEWNEWNEWNEWNEWN", "jbswy3dpehpk3pxp"])
            self.assertEqual([type(d.secret) for d in devices], [str] * 3)
            self.assertEqual(session.get(self.Device, 1).secret, TOTP)
            self.assertFalse(session.dirty)

    def test_legacy_plaintext_becomes_a_token_when_its_row_is_written(self):
        Device, Owner = self.Device, self.Owner
        reads = [
            ("batched", lambda s, pk: s.execute(sa.select(Device).where(Device.id == pk)).scalars().one()),
            ("get", lambda s, pk: s.get(Device, pk)),
            # Value by value: a stream, and a joined load from a class without encrypted columns.
            ("yield_per", lambda s, pk: next(s.execute(sa.select(Device).where(Device.id == pk).execution_options(yield_per=5)).scalars())),
            ("joined", lambda s, pk: s.execute(sa.select(Owner).where(Owner.id == pk).options(orm.joinedload(Owner.devices))).unique().scalars().one().devices[0]),
        ]
        for pk, (name, read) in enumerate(reads, 1):
            with self.subTest(name):
                self.insert_raw("owner", id=pk)
                self.insert_raw("device", id=pk, name="old", secret=TOTP, owner_id=pk)
                with self.session() as session:
                    self.assertEqual(read(session, pk).secret, TOTP)
                    session.commit()  # read only: nothing written
                self.assertEqual(self.stored("device", "secret"), [TOTP])
                with self.session() as session:
                    device = read(session, pk)
                    self.assertEqual(type(device.secret), str)
                    device.name = "renamed"
                    self.client.calls.clear()
                    session.commit()
                    self.assertEqual(self.client.calls, {"encrypt_many": 1})  # in the flush's batch
                self.assertEqual(self.primary.decrypt(self.stored("device", "secret")[0].encode()), TOTP.encode())
                with self.session() as session:
                    self.assertEqual(session.get(self.Device, pk).secret, TOTP)
                with self.engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM device"))
                    conn.execute(sa.text("DELETE FROM owner"))

    def test_what_is_not_legacy_plaintext_fails(self):
        cases = [
            ("device", "not base32 at all!"),  # MALFORMED, not the shape
            ("device", Fernet(Fernet.generate_key()).encrypt(TOTP.encode()).decode()),  # a token under another key
            ("strict", TOTP),  # the shape, but no legacy_plaintext on this column
        ]
        for table, stored in cases:
            with self.subTest(table=table, stored=stored[:20]):
                self.insert_raw(table, id=99, secret=stored)
                model = self.Device if table == "device" else self.Strict
                reads = [  # what the error says of where the value is
                    (lambda s: s.execute(sa.select(model)).scalars().all(), "%s.secret of the row with primary key 99 " % table),
                    (lambda s: s.get(model, 99), "%s.secret of the row with primary key 99 " % table),
                    (lambda s: s.execute(sa.select(model.secret)).all(), "%s.secret does not" % table),
                    (lambda s: s.execute(sa.select(model).execution_options(yield_per=5)).scalars().all(), "%s.secret does not" % table),
                    (lambda s: s.connection().execute(sa.select(model.__table__)).all(), "%s.secret does not" % table),
                ]
                for read, where in reads:
                    with self.session() as session, self.assertRaises(InvalidToken) as caught:
                        read(session)
                    self.assertIn(where, str(caught.exception))
                    self.assertIn(caught.exception.reason, str(caught.exception))
                    self.assertHoldsNone(caught.exception, [stored])
                with self.engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM %s" % table))

    def assertHoldsNone(self, exc, secrets):
        """Neither exc nor any exception it chains holds one of secrets."""
        todo, seen = [exc], set()
        while todo:
            exc = todo.pop()
            if exc is None or id(exc) in seen:
                continue
            seen.add(id(exc))
            for text in (str(exc), repr(exc), repr(exc.args)):
                for secret in secrets:
                    self.assertNotIn(str(secret), text)
            todo += [exc.__cause__, exc.__context__]

    def test_sql_expressions_are_refused(self):
        """An SQL expression given to an encrypted column would be stored as
        the database computes it, unencrypted: every way of writing one
        raises TypeError naming the column, and writes nothing."""
        self.add_devices(2)
        Device, table = self.Device, self.Device.__table__
        before = self.stored("device", "secret"), self.stored("device", "note")
        # A column of an encrypted type whose values are a function's.
        coalesced = sa.select(table.c.id, sa.func.coalesce(table.c.secret, table.c.name).label("secret")).subquery()
        core = [
            ("update column", sa.update(table).values(secret=table.c.name)),
            ("update function", sa.update(table).values(note=sa.func.lower("SECRET-FN"))),
            ("update typed literal", sa.update(table).values(secret=sa.literal("SECRET-LIT"))),
            ("update subquery", sa.update(table).values(note=sa.select(table.c.name).where(table.c.id == 1).scalar_subquery())),
            ("ordered_values", sa.update(table).ordered_values((table.c.note, sa.func.upper(table.c.name)))),
            ("insert cast", sa.insert(table).values(id=9, secret=sa.cast("SECRET-CAST", sa.String))),
            ("insert rows", sa.insert(table).values([{"id": 9, "secret": "fine"}, {"id": 10, "secret": table.c.name}])),
            ("insert row of an untyped bind", sa.insert(table).values([{"id": 9, "note": "fine"}, {"id": 10, "note": sa.bindparam("n")}])),
            ("from_select", sa.insert(table).from_select(["id", "note"], sa.select(table.c.id + 10, table.c.name))),
            ("from_select bind", sa.insert(table).from_select(["id", "note"], sa.select(table.c.id + 10, sa.literal("SECRET-SEL")))),
            ("lightweight plain column", sa.update(table).values(secret=sa.table("device", sa.column("name", sa.String(40))).c.name)),
            ("arithmetic", sa.update(table).values(note=table.c.id + 1)),
            ("labelled function", sa.update(table).values(note=sa.func.lower("SECRET-FN").label("n"))),
            ("cast to String", sa.update(table).values(note=sa.cast(table.c.secret, sa.String))),
            ("cast to an encrypted type", sa.update(table).values(note=sa.cast(table.c.name, fs.EncryptedText()))),
            ("type_coerce to String", sa.update(table).values(note=sa.type_coerce(table.c.secret, sa.String))),
            ("subquery of a function", sa.update(table).values(secret=sa.select(sa.func.coalesce(table.c.secret, table.c.name)).limit(1).scalar_subquery())),
            ("subquery's column of a function", sa.insert(table).from_select(["id", "note"], sa.select(coalesced.c.id + 10, coalesced.c.secret))),
            ("union with a plain column", sa.insert(table).from_select(["id", "note"], sa.select(table.c.id + 10, table.c.secret).union_all(sa.select(table.c.id + 20, table.c.name)))),
            ("multi-table update", sa.update(self.Owner.__table__).where(self.Owner.id == Device.owner_id).values({table.c.secret: table.c.name})),
            ("text().columns of a plain column", sa.insert(table).from_select(["id", "note"], sa.text("SELECT id + 10, name FROM device").columns(sa.column("id", sa.Integer), sa.column("name", sa.String)))),
        ]
        upsert = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table).values(id=1, secret="fine")
        core += [
            ("upsert function", upsert.on_conflict_do_update(index_elements=["id"], set_={"note": sa.func.lower("SECRET-FN")})),
            ("upsert column", upsert.on_conflict_do_update(index_elements=["id"], set_={"secret": upsert.excluded.name})),
        ]
        refused = r"^device\.(secret|note) is encrypted: it takes a value, not an SQL expression"
        for name, stmt in core:
            with self.subTest(name), self.engine.begin() as conn, self.assertRaisesRegex(TypeError, refused) as caught:
                conn.execute(stmt, {"n": "SECRET-BIND"}) if "bind" in name else conn.execute(stmt)
            self.assertHoldsNone(caught.exception, ["SECRET"])
        orm_writes = [
            # (An ORM UPDATE of an encrypted column needs synchronize_session=False.)
            ("ORM update", lambda s: s.execute(sa.update(Device).values(secret=Device.name).execution_options(synchronize_session=False))),
            ("ORM update function", lambda s: s.execute(sa.update(Device).values(note=sa.func.lower("SECRET-FN")).execution_options(synchronize_session=False))),
            ("legacy Query.update", lambda s: s.query(Device).update({"note": Device.name}, synchronize_session=False)),
            ("ORM insert", lambda s: s.execute(sa.insert(Device).values(id=9, note=sa.func.lower("SECRET-FN")))),
            ("attribute", lambda s: setattr(s.get(Device, 1), "secret", Device.name)),
            ("new object", lambda s: s.add(Device(id=9, note=sa.func.lower("SECRET-FN")))),
            ("bulk_update_mappings", lambda s: s.bulk_update_mappings(Device, [{"id": 1, "note": sa.func.lower("SECRET-FN")}])),
            ("executemany parameter", lambda s: s.connection().execute(sa.insert(table), [{"id": 9, "secret": "x"}, {"id": 10, "secret": Device.name}])),
        ]
        for name, write in orm_writes:
            with self.subTest(name), self.session() as session:
                with self.assertRaisesRegex(TypeError, refused) as caught:
                    write(session)
                    session.commit()
                self.assertHoldsNone(caught.exception, ["SECRET"])
        self.assertEqual((self.stored("device", "secret"), self.stored("device", "note")), before)

    def test_values_tokens_and_null_are_written(self):
        """What the refusal of SQL expressions lets through: values (bound
        and encrypted, one by one or many at once), NULL, and the tokens of
        encrypted columns, copied as they are."""
        Device, table = self.Device, self.Device.__table__
        with self.engine.begin() as conn:
            conn.execute(sa.insert(table).values(id=1, secret="one", note=sa.bindparam("n")), {"n": "note one"})
            conn.execute(sa.insert(table), [{"id": 2, "secret": "two"}, {"id": 3, "secret": "three"}])
            conn.execute(sa.insert(table).values([{"id": 4, "secret": "four"}, (5, None, "five", "note five")]))
            conn.execute(sa.update(table).where(table.c.id == 5).values(note=None, blob=sa.null()))
            conn.execute(sa.insert(table).from_select(["id", "note"], sa.select(table.c.id + 10, table.c.secret.label("s")).where(table.c.id < 3)))
            upsert = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table).values(id=4, secret="FOUR", note="note four")
            conn.execute(upsert.on_conflict_do_update(index_elements=["id"], set_={"secret": upsert.excluded.secret, "note": "NOTE FOUR"}))
        with self.session() as session:
            session.bulk_insert_mappings(Device, [{"id": 6, "secret": "six"}, {"id": 7, "secret": "seven"}])
            session.bulk_update_mappings(Device, [{"id": 7, "note": "note seven"}])
            session.execute(sa.update(Device).where(Device.id == 6).values(note=Device.secret, blob=b"six").execution_options(synchronize_session=False))
            session.execute(sa.update(Device).where(Device.id == 7).values(secret="SEVEN").execution_options(synchronize_session=False))
            session.commit()
        got = {row.id: (row.secret, row.note, row.blob) for row in self.session().execute(sa.select(table))}
        self.assertEqual(
            got,
            {
                1: ("one", "note one", None),
                2: ("two", None, None),
                3: ("three", None, None),
                4: ("FOUR", "NOTE FOUR", None),
                5: ("five", None, None),
                6: ("six", "six", b"six"),
                7: ("SEVEN", "note seven", None),
                11: (None, "one", None),
                12: (None, "two", None),
            },
        )
        for token in self.stored("device", "secret") + self.stored("device", "note"):
            if token is not None:
                self.primary.decrypt(token.encode())  # a token, not the value

    def test_an_encrypted_column_added_to_a_table_in_use_is_checked(self):
        """The check skips tables without encrypted columns, and remembers
        which have one: a column added to a table already written counts."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE late (id INTEGER PRIMARY KEY, name VARCHAR(40), secret VARCHAR(200))"))

        def drop():
            with self.engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE late"))

        self.addCleanup(drop)
        late = sa.Table("late", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
        with self.engine.begin() as conn:
            conn.execute(sa.insert(late).values(id=1, name="SECRET-NAME"))
            conn.execute(sa.update(late).values(name=sa.func.upper(late.c.name)))
        late.append_column(sa.Column("secret", fs.EncryptedString(200, fernet=lambda: self.client)))
        with self.engine.begin() as conn, self.assertRaisesRegex(TypeError, r"^late\.secret is encrypted"):
            conn.execute(sa.update(late).values(secret=late.c.name))
        with self.engine.begin() as conn:
            conn.execute(sa.update(late).values(secret="late"))
            self.assertEqual(conn.execute(sa.select(late.c.secret)).scalar_one(), "late")
        [token] = self.stored("late", "secret")
        self.assertEqual(self.primary.decrypt(token.encode()), b"late")

    def test_expressions_that_copy_tokens_are_written(self):
        """What yields an encrypted column's tokens is written as it is, so
        the copy holds the very token and reads back: a scalar subquery of an
        encrypted column, the columns of a lightweight table or of
        text().columns() typed as encrypted, a subquery's column of one,
        type_coerce() to an encrypted type, a union of them, NULL."""
        self.add_devices(2)
        with self.session() as session:
            session.add(self.Strict(id=1, secret="strict one"))
            session.commit()
        self.client.calls.clear()
        table, strict = self.Device.__table__, self.Strict.__table__
        light = sa.table("device", sa.column("id", sa.Integer), sa.column("secret", fs.EncryptedString(200)))
        (secret1, note1), (secret2, note2) = zip(self.stored("device", "secret"), self.stored("device", "note"))

        def typed(sql):
            return sa.text(sql).columns(sa.column("id", sa.Integer), sa.column("secret", fs.EncryptedString(200)))

        typed_rows = typed("SELECT id + 50 AS id, secret FROM device WHERE id <= 2").subquery()
        first, second = table.c.id == 1, table.c.id == 2
        with self.engine.begin() as conn:
            conn.execute(sa.insert(table).from_select(["id", "note"], sa.select(light.c.id + 10, light.c.secret).where(light.c.id <= 2)))
            conn.execute(sa.insert(table).from_select(["id", "secret"], typed("SELECT id + 20, secret FROM device WHERE id <= 2")))
            conn.execute(
                sa.insert(table).from_select(["id", "secret", "note"], sa.select(table.c.id + 30, sa.null().label("s"), table.c.note).where(table.c.id <= 2))
            )
            union = sa.select(table.c.id + 40, table.c.secret).where(first).union_all(sa.select(table.c.id + 40, table.c.note).where(second))
            conn.execute(sa.insert(table).from_select(["id", "secret"], union))
            conn.execute(sa.insert(table).from_select(["id", "note"], sa.select(typed_rows.c.id, typed_rows.c.secret)))
            conn.execute(sa.update(table).where(first).values(note=sa.select(strict.c.secret).where(strict.c.id == table.c.id).scalar_subquery()))
            conn.execute(sa.update(table).where(second).values(note=light.c.secret))
            conn.execute(sa.update(table).where(table.c.id == 11).values(secret=sa.type_coerce(table.c.note, fs.EncryptedString(200))))
        self.assertEqual(self.client.calls, {})  # nothing encrypted: copied
        [strict_token] = self.stored("strict", "secret")
        tokens = dict(zip(self.stored("device", "id"), zip(self.stored("device", "secret"), self.stored("device", "note"))))
        self.assertEqual(
            tokens,
            {
                1: (secret1, strict_token),
                2: (secret2, secret2),
                11: (secret1, secret1),
                12: (None, secret2),
                21: (secret1, None),
                22: (secret2, None),
                31: (None, note1),
                32: (None, note2),
                41: (secret1, None),
                42: (note2, None),
                51: (None, secret1),
                52: (None, secret2),
            },
        )
        plaintexts = {secret1: TOTP + "0000", secret2: TOTP + "0001", note1: "note 0", note2: "note 1", strict_token: "strict one", None: None}
        with self.session() as session:
            got = {device.id: (device.secret, device.note) for device in session.scalars(sa.select(self.Device))}
        self.assertEqual(got, {id: (plaintexts[secret], plaintexts[note]) for id, (secret, note) in tokens.items()})

    def test_bind_errors_hold_no_values(self):
        """A value that cannot be encrypted raises the package's error as it
        is, naming the column, not SQLAlchemy's StatementError, whose
        message would list the statement's plaintexts."""
        Device, table = self.Device, self.Device.__table__
        down = SidecarFernet("unix://%s/absent.sock" % env.get("UNIX_TARGET")[len("unix://"):].rsplit("/", 1)[0], timeout=2, max_attempts=1)
        self.addCleanup(down.close)
        big = "SECRET-BIG" * (int(env.get("MAX_PLAINTEXT")) // 10 + 1)
        # A sidecar whatever this class's backend, for its limit.
        limited = SidecarFernet(env.get("TCP_TARGET"), timeout=10)
        self.addCleanup(limited.close)
        writes = [  # each writes the values one and two
            ("core insert", lambda s, one, two: s.connection().execute(sa.insert(table), {"id": 1, "secret": one, "note": two})),
            ("executemany", lambda s, one, two: s.connection().execute(sa.insert(table), [{"id": 1, "secret": one}, {"id": 2, "secret": two}])),
            ("bulk_insert_mappings", lambda s, one, two: s.bulk_insert_mappings(Device, [{"id": 1, "secret": one, "note": two}])),
            ("ORM update", lambda s, one, two: s.execute(sa.update(Device).values(secret=one, note=two).execution_options(synchronize_session=False))),
            ("flush", lambda s, one, two: (s.add(Device(id=1, secret=one, note=two)), s.flush())),
        ]
        real_client = self.client.client
        self.addCleanup(setattr, self.client, "client", real_client)
        for client, error, reason, one in [(down, SidecarUnavailable, None, "SECRET-1"), (limited, SidecarError, "PLAINTEXT_TOO_LARGE", big)]:
            self.client.client = client
            for name, write in writes:
                with self.subTest(name, reason=reason), self.session() as session:
                    with self.assertRaises(error) as caught:
                        write(session, one, "SECRET-2")
                    self.assertNotIsInstance(caught.exception, sa.exc.StatementError)
                    self.assertEqual(caught.exception.reason, reason)
                    self.assertHoldsNone(caught.exception, ["SECRET"])
                    if name != "flush":  # the flush encrypts all its values in one call, before any statement
                        self.assertRegex(str(caught.exception), r"^device\.(secret|note): ")
        self.client.client = real_client
        with self.session() as session, self.assertRaisesRegex(RuntimeError, r"^device\.secret: the value could not be encrypted \(AttributeError\)") as caught:
            session.connection().execute(sa.insert(table), {"id": 1, "secret": 987654321, "note": "SECRET-2"})
        self.assertHoldsNone(caught.exception, ["SECRET", 987654321])

    def test_a_token_longer_than_the_column_is_refused(self):
        """EncryptedString(200) holds the token of 79 UTF-8 bytes (184
        characters) but not that of 80 (204): writing it raises ValueError
        naming the column, not the value, and writes nothing, whatever the
        database does with a value too long (MySQL may cut it)."""
        fits, too_long = "SECRET-" + "x" * 72, "SECRET-" + "x" * 73
        table = self.Device.__table__
        writes = [
            ("flush", lambda s, value: (s.add(self.Device(id=1, secret=value)), s.flush())),
            ("core insert", lambda s, value: s.connection().execute(sa.insert(table), {"id": 1, "secret": value})),
        ]
        for name, write in writes:
            with self.subTest(name):
                with self.session() as session:
                    with self.assertRaisesRegex(ValueError, r"^device\.secret: the token of this value is 204 characters long, longer than the column's 200") as caught:
                        write(session, too_long)
                    self.assertHoldsNone(caught.exception, ["SECRET"])
                self.assertEqual(self.stored("device", "secret"), [])
                with self.session() as session:
                    write(session, fits)
                    session.commit()
                self.assertEqual([len(token) for token in self.stored("device", "secret")], [184])
                with self.engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM device"))

    def test_ttl(self):
        self.insert_raw("strict", id=1, secret=self.primary.encrypt_at_time(b"old", int(time.time()) - 7200).decode())
        self.insert_raw("strict", id=2, secret=self.primary.encrypt(b"fresh").decode())
        with self.session() as session:
            self.assertEqual(session.get(self.Strict, 2).secret, "fresh")
            with self.assertRaises(InvalidToken) as caught:
                session.execute(sa.select(self.Strict)).scalars().all()
            self.assertEqual(caught.exception.reason, "EXPIRED")
            # The failed query left no half-loaded value in the session.
            self.assertEqual(session.get(self.Strict, 2).secret, "fresh")
            with self.assertRaises(InvalidToken):
                session.get(self.Strict, 1).secret

    def test_no_client_configured(self):
        self.addCleanup(fs.configure, fs._default_fernet)  # the Flask tests configure one
        fs.configure(None)
        Base = orm.declarative_base()

        class Lonely(Base):
            __tablename__ = "lonely"
            id = sa.Column(sa.Integer, primary_key=True)
            secret = sa.Column(fs.EncryptedString(200))

        Base.metadata.create_all(self.engine)
        self.addCleanup(Base.metadata.drop_all, self.engine)
        with self.session() as session:
            session.add(Lonely(secret="x"))
            with self.assertRaisesRegex(RuntimeError, "configure"):
                session.commit()

    def test_bad_legacy_shape(self):
        with self.assertRaises(ValueError):
            fs.EncryptedString(200, legacy_plaintext="base64")


class SQLiteTest(Database, unittest.TestCase):
    def url(self):
        return "sqlite://"


class PostgreSQLTest(Database, unittest.TestCase):
    def url(self):
        return env.get("POSTGRES_URL")


class SQLiteInProcessTest(SQLiteTest):
    """The same columns over the in-process backend (app test suites)."""

    def make_client(self):
        return InProcessFernet([self.primary_key, env.get("OLD_KEY")])


if __name__ == "__main__":
    unittest.main()
