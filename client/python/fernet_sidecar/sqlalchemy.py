"""SQLAlchemy column types that store Fernet tokens made by fernet-sidecar.

    from fernet_sidecar.sqlalchemy import EncryptedString, configure

    configure(SidecarFernet("unix:///run/fernet/fernet.sock"))   # or the Flask extension does it

    class Device(Base):
        __tablename__ = "device"
        id = Column(Integer, primary_key=True)
        secret = Column(EncryptedString(200, legacy_plaintext="totp-base32"))

The column holds a standard Fernet token (what cryptography.fernet makes);
the attribute holds the plaintext. Values are encrypted when bound and
decrypted when read, with two batching hooks on every Session so that an ORM
flush or query costs one RPC per type, not one per value:

- before a flush, the new and changed values of encrypted columns are
  encrypted with one encrypt_many per column type;
- an ORM SELECT whose top-level entities have encrypted columns (queries,
  Session.get, refreshes of expired attributes, selectin loads) reads all
  its rows, their tokens are decrypted with one decrypt_many per column
  type before the first object is made of them, and the plaintexts are put
  in each object before its load listeners and reconstructor run, and in
  the rows. Such a query is buffered (as .all() is); a query with yield_per
  or stream_results is not, and decrypts value by value.

Anything else (Core statements, a joined eager load's related columns)
decrypts and encrypts value by value, with the same results.
"""

import contextvars
import weakref

from sqlalchemy import Column, LargeBinary, String, Text, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DontWrapMixin
from sqlalchemy.orm import Mapper, Session, attributes
from sqlalchemy.sql import dml, elements, operators, selectable
from sqlalchemy.types import NullType, TypeDecorator

from . import _errors
from ._legacy import check_shape, looks_like

__all__ = ["EncryptedString", "EncryptedText", "EncryptedBinary", "configure"]

_default_fernet = None


def configure(fernet):
    """Sets the client of the columns made without fernet=: a client (a
    SidecarFernet, an InProcessFernet) or a callable returning one, called
    at each use (the Flask extension passes one that returns the current
    app's client for this process). None unsets it."""
    global _default_fernet
    _default_fernet = fernet


class _Encrypted(TypeDecorator):
    """What the three types share; a subclass says how a plaintext becomes
    bytes and back, and how the token is stored."""

    cache_ok = True

    def __init__(self, *args, ttl=None, legacy_plaintext=None, fernet=None, **kwargs):
        """
        :param ttl: seconds; a token older than this fails to read
            (InvalidToken EXPIRED), as decrypt(token, ttl). None: no limit.
        :param legacy_plaintext: "totp-base32" or "totp-hex": a stored value
            that is not a token (MALFORMED) and has this shape is read as
            the plaintext it is, so rows written before encryption still
            read. Such a value becomes a token when the ORM next writes its
            row (an UPDATE of the object for any column), not on a read
            alone (or now, with ``flask fernet reencrypt
            --encrypt-plaintext``).
        :param fernet: the client of this column, or a callable returning
            one; without it, the one given to configure().
        """
        if legacy_plaintext is not None:
            check_shape(legacy_plaintext)
        super().__init__(*args, **kwargs)
        self.ttl = ttl
        self.legacy_plaintext = legacy_plaintext
        self.fernet = fernet
        self.column_name = None  # "table.column", for errors; set by _named

    # -- how a subclass stores things --------------------------------------

    def _to_bytes(self, value):
        raise NotImplementedError

    def _from_bytes(self, plaintext):
        raise NotImplementedError

    def _store(self, token):
        """The column's value for a token (ASCII bytes)."""
        return token.decode("ascii")

    # -- SQLAlchemy's hooks ------------------------------------------------

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        # SQLAlchemy wraps what this raises in a StatementError whose
        # message holds the statement's parameters, the plaintexts, unless
        # its class has DontWrapMixin.
        try:
            return self._store(self._token(value))
        except _errors.SidecarError as err:
            raise _unwrapped(err, self.column_name) from err
        except Exception as err:
            if isinstance(err, DontWrapMixin):
                raise
            failed = type(err).__name__
        # Out of the except clause, so as not to chain err, whose message
        # may quote the value (a value of the wrong type).
        raise _EncryptionFailed("%s: the value could not be encrypted (%s)" % (self.column_name or "an encrypted column", failed))

    def _token(self, value):
        if _is_sql(value):
            raise self.refuse_expression()
        made = _flush_tokens.get()
        token = made.pop(self, value) if made is not None else None
        if token is None:
            token = self.client().encrypt(self._to_bytes(value))
        length = getattr(self.impl, "length", None)
        if length is not None and len(token) > length:
            raise _TokenTooLong(
                "%s: the token of this value is %d characters long, longer than the column's %d; "
                "make the column longer (see EncryptedString)" % (self.column_name or "an encrypted column", len(token), length)
            )
        return token

    def refuse_expression(self):
        """The error for an SQL expression given as this column's value."""
        return _SQLExpressionRefused(
            "%s is encrypted: it takes a value, not an SQL expression, which the database "
            "would store unencrypted." % (self.column_name or "an encrypted column")
        )

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        token = _token_text(value)
        batch = _read_batch.get()
        if batch is not None:
            return batch.add(self, token)
        try:
            return self._from_bytes(self.client().decrypt(token, self.ttl))
        except _errors.InvalidToken as err:
            legacy = self._legacy(token, err)
            if legacy is None:
                raise _located(err, self.column_name) from err
            return legacy

    def process_literal_param(self, value, dialect):
        raise NotImplementedError("an encrypted value cannot be written as a SQL literal")

    class comparator_factory(TypeDecorator.Comparator):
        """Refuses every SQL operator but IS NULL and IS NOT NULL: each token
        has a random IV, so a token made of the value compared never equals
        the stored one, and a filter would silently match nothing."""

        __slots__ = ()

        def operate(self, op, *other, **kwargs):
            if op in _NULL_TESTS and len(other) == 1 and (other[0] is None or isinstance(other[0], elements.Null)):
                return super().operate(op, *other, **kwargs)
            raise self._refuse(op)

        def reverse_operate(self, op, other, **kwargs):
            raise self._refuse(op)

        def _refuse(self, op):
            # The SQLAlchemy error for an operator a type does not support.
            return NotImplementedError(
                "%s is an encrypted column: its values cannot be compared or ordered in SQL (%s), since each token has "
                "a random IV; only IS NULL and IS NOT NULL (== None, != None) work. Filter on another column."
                % (self.expr, getattr(op, "__name__", op))
            )

    # -- the rest ----------------------------------------------------------

    def client(self):
        fernet = self.fernet if self.fernet is not None else _default_fernet
        if fernet is None:
            raise _NoClient(
                "no Fernet client for this encrypted column: pass fernet= to the type, "
                "call fernet_sidecar.sqlalchemy.configure(), or use the Flask extension"
            )
        return fernet() if callable(fernet) else fernet

    def _legacy(self, stored, err):
        """The plaintext of a stored value the backend refused with err, marked
        as legacy, if it is legacy plaintext; else None."""
        if self.legacy_plaintext and err.reason == _errors.MALFORMED and looks_like(self.legacy_plaintext, stored):
            plaintext = self._from_bytes(stored.encode("ascii"))
            return _LegacyText(plaintext) if isinstance(plaintext, str) else _LegacyBytes(plaintext)
        return None


@event.listens_for(Column, "after_parent_attach")
def _named(column, table):
    """Gives an encrypted column's type the column's name, for its errors.
    One type object in several columns names them all."""
    coltype = column.type
    if isinstance(coltype, _Encrypted):
        name = _column_name(column)
        known = coltype.column_name
        coltype.column_name = name if known in (None, name) else "%s or %s" % (known, name)
        _has_encrypted[table] = True


def _column_name(column):
    return "%s.%s" % (column.table.fullname, column.name)


def _located(err, column_name, pk=None):
    """err, an InvalidToken, as one that also says which column (and row,
    when known) holds the value; never the value."""
    where = column_name or "an encrypted column"
    if pk is not None:
        where += " of the row with primary key %s" % (pk[0] if len(pk) == 1 else pk,)
    return _errors.InvalidToken("%s does not decrypt (%s): %s" % (where, err.reason, err), err.reason)


_NULL_TESTS = (operators.is_, operators.is_not, operators.eq, operators.ne)


# -- errors SQLAlchemy raises as they are -------------------------------------
#
# An exception raised while a statement runs (by process_bind_param) becomes
# a StatementError whose message lists the statement's parameters, so the
# plaintexts of its encrypted columns, unless its class has DontWrapMixin.
# These are the package's errors with it: except SidecarError,
# SidecarUnavailable, TypeError, ValueError and RuntimeError
# catch them as before.


class _SidecarError(_errors.SidecarError, DontWrapMixin):
    pass


class _SidecarUnavailable(_errors.SidecarUnavailable, DontWrapMixin):
    pass


class _SQLExpressionRefused(TypeError, DontWrapMixin):
    pass


class _TokenTooLong(ValueError, DontWrapMixin):
    pass


class _EncryptionFailed(RuntimeError, DontWrapMixin):
    pass


class _NoClient(RuntimeError, DontWrapMixin):
    pass


def _unwrapped(err, column_name):
    """err, a SidecarError raised when a value of column_name was bound, as
    one SQLAlchemy does not wrap, naming the column."""
    message = "%s: %s" % (column_name or "an encrypted column", err.message)
    unwrapped = _SidecarUnavailable if isinstance(err, _errors.SidecarUnavailable) else _SidecarError
    return unwrapped(message, err.code, err.reason)


class EncryptedString(_Encrypted):
    """A str, stored as a token in a VARCHAR. ``length`` is the column's, so
    it must hold the token: a plaintext of n UTF-8 bytes makes a token of
    4 * ceil((73 + 16 * (n // 16)) / 3) characters (a 32-byte TOTP secret:
    140). Binding a value whose token is longer raises ValueError, rather
    than leave it to the database (a non-strict MySQL cuts it)."""

    impl = String
    cache_ok = True

    def _to_bytes(self, value):
        return value.encode("utf-8")

    def _from_bytes(self, plaintext):
        return plaintext.decode("utf-8")


class EncryptedText(EncryptedString):
    """A str, stored as a token in a TEXT column."""

    impl = Text
    cache_ok = True


class EncryptedBinary(_Encrypted):
    """bytes, stored as the token's ASCII bytes in a binary column (BYTEA,
    BLOB), as django-fernet-fields stores them."""

    impl = LargeBinary
    cache_ok = True

    def _to_bytes(self, value):
        return bytes(value)

    def _from_bytes(self, plaintext):
        return plaintext

    def _store(self, token):
        return token


class _LegacyText(str):
    """A legacy plaintext as read (a str equal to it), so that the load event
    of its object notes that the column still holds plaintext and puts a
    plain str in its place. A Core statement, which loads no object,
    returns it as it is."""


class _LegacyBytes(bytes):
    """_LegacyText for bytes."""


def _plain(value):
    """value as its own type, without a legacy mark."""
    if isinstance(value, _LegacyText):
        return str(value)
    if isinstance(value, _LegacyBytes):
        return bytes(value)
    return value


# state.info's key for the set of an object's encrypted columns that were
# read as legacy plaintext.
_LEGACY_KEYS = "fernet_sidecar.legacy_plaintext"


def _token_text(value):
    """A stored token as str: drivers return binary columns as bytes or
    memoryview."""
    if isinstance(value, str):
        return value
    return bytes(value).decode("ascii", "replace")


# -- batched encryption before a flush --------------------------------------

# The tokens made before the flush that is running, for process_bind_param.
_flush_tokens = contextvars.ContextVar("fernet_sidecar_flush_tokens", default=None)


class _FlushTokens:
    """Tokens made ahead for values a flush is about to bind, used once each
    so that two rows never share a token. They are keyed by the value
    object's identity (the flush binds the very objects the instances hold)
    and by what made the token: the column type's class (how the value
    becomes bytes) and its client. One value object in two columns with
    different clients gets a token from each."""

    def __init__(self):
        self._tokens = {}  # (class, id(fernet), id(value)) -> (value, [tokens])

    @staticmethod
    def _key(coltype, value):
        # coltype may be a copy the dialect made of the column's type, so
        # its fields count, not its identity; the column type holds its
        # fernet for as long as the flush runs.
        return type(coltype), id(coltype.fernet), id(value)

    def put(self, coltype, value, token):
        self._tokens.setdefault(self._key(coltype, value), (value, []))[1].append(token)

    def pop(self, coltype, value):
        entry = self._tokens.get(self._key(coltype, value))
        if entry is None or entry[0] is not value or not entry[1]:
            return None
        return entry[1].pop()


@event.listens_for(Session, "before_flush")
def _encrypt_before_flush(session, flush_context, instances):
    _rewrite_legacy(session)
    pending = {}  # column type -> [values]
    for obj in list(session.new) + list(session.dirty):
        state = attributes.instance_state(obj)
        for key, coltype in _encrypted_columns(state.mapper):
            if key not in state.dict:
                continue
            value = state.dict[key]
            if value is None or (state.key is not None and not attributes.get_history(obj, key).added):
                continue
            if _is_sql(value):  # the flush writes it as SQL
                if not _stores_token(value, binds_take_column_type=True):
                    raise coltype.refuse_expression()
                continue
            pending.setdefault(coltype, []).append(value)
    _flush_tokens.set(None)
    if not pending:
        return
    made = _FlushTokens()
    for coltype, values in pending.items():
        tokens = coltype.client().encrypt_many([coltype._to_bytes(v) for v in values])
        for value, token in zip(values, tokens):
            made.put(coltype, value, token)
    _flush_tokens.set(made)


def _rewrite_legacy(session):
    """Marks the columns read as legacy plaintext as modified in the objects
    this flush writes, so that the UPDATE writes them as tokens: SQLAlchemy
    writes only the values that changed."""
    for obj in session.dirty:
        state = attributes.instance_state(obj)
        if not state.info.get(_LEGACY_KEYS) or not session.is_modified(obj):
            continue
        for key in state.info.pop(_LEGACY_KEYS):
            if key in state.dict and key not in state.committed_state:
                attributes.flag_modified(obj, key)


# After the flush, or its failure: a failed flush rolls back.
@event.listens_for(Session, "after_flush_postexec")
@event.listens_for(Session, "after_soft_rollback")
def _forget_flush_tokens(session, flush_context_or_transaction):
    _flush_tokens.set(None)


# -- batched decryption of a query's results --------------------------------

# The batch of the ORM SELECT running in this context, if any.
_read_batch = contextvars.ContextVar("fernet_sidecar_read_batch", default=None)


class _PendingToken:
    """A token read in a batch, standing in for its plaintext until the batch
    is decrypted, which happens before the load event of the first object
    the query loads (all rows are read by then) or, in a query of columns
    only, when it ends. Code that still gets hold of one (a load listener
    reading the attributes of another object of the same query, whose own
    load event has not run yet) gets a clear error on any use of it rather
    than a value that holds the token."""

    __slots__ = ("coltype", "token", "plaintext", "error")

    def __init__(self, coltype, token):
        self.coltype = coltype
        self.token = token
        self.error = None  # the InvalidToken, when it does not decrypt

    def __repr__(self):
        return "<encrypted value, not decrypted yet>"

    def _refuse(self, *args):
        raise RuntimeError(
            "an encrypted attribute was used before its object finished loading: fernet_sidecar.sqlalchemy "
            "decrypts a query's values in one batch, before the load event of each object; read the "
            "attributes of an object in its own load event or reconstructor, or after the query"
        )

    def __getattr__(self, name):
        self._refuse()

    def __eq__(self, other):
        if isinstance(other, _PendingToken):
            return self is other
        self._refuse()

    def __ne__(self, other):
        return not self == other

    __hash__ = object.__hash__
    __str__ = __bytes__ = __format__ = __bool__ = __len__ = __iter__ = __contains__ = _refuse
    __add__ = __radd__ = __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = _refuse


class _ReadBatch:
    """The tokens an ORM SELECT read, and the objects it loaded."""

    def __init__(self):
        self.pending = []  # every token read
        self.undecrypted = []  # those of them not decrypted yet
        self.objects = []

    def add(self, coltype, token):
        pending = _PendingToken(coltype, token)
        self.pending.append(pending)
        self.undecrypted.append(pending)
        return pending

    def decrypt(self):
        """Decrypts the tokens not decrypted yet, one decrypt_many per column
        type."""
        undecrypted, self.undecrypted = self.undecrypted, []
        by_type = {}
        for pending in undecrypted:
            by_type.setdefault(pending.coltype, []).append(pending)
        for coltype, group in by_type.items():
            results = coltype.client().decrypt_many([s.token for s in group], coltype.ttl, return_exceptions=True)
            for pending, result in zip(group, results):
                if isinstance(result, _errors.InvalidToken):
                    pending.plaintext = coltype._legacy(pending.token, result)
                    if pending.plaintext is None:
                        pending.error = result
                elif isinstance(result, Exception):
                    raise result
                else:
                    pending.plaintext = coltype._from_bytes(result)

    def fill_rows(self, frozen):
        """The frozen result's rows with their plaintexts. Raises if any token
        of the query did not decrypt, object loaded or not: a query reads
        all its rows or fails."""
        self.decrypt()
        for pending in self.pending:
            if pending.error is not None:
                raise _located(pending.error, pending.coltype.column_name) from pending.error
        rows = [[_plain(v.plaintext) if isinstance(v, _PendingToken) else v for v in row] for row in frozen.rewrite_rows()]
        return frozen.with_new_rows(rows)

    def forget(self, session):
        """After a failure, expires what the objects loaded still hold
        encrypted: the next access loads it again."""
        for obj in self.objects:
            keys = _pending_keys(obj)
            if keys:
                session.expire(obj, keys)


def _pending_keys(obj):
    """The keys of the object's encrypted columns that hold a _PendingToken."""
    state = attributes.instance_state(obj)
    return [key for key, _ in _encrypted_columns(state.mapper) if isinstance(state.dict.get(key), _PendingToken)]


# First of all load listeners (insert=True, and listeners on Mapper run
# before those of a class, @reconstructor included), so that the app's
# listeners see plaintexts.
@event.listens_for(Mapper, "load", insert=True)
def _loaded(obj, context):
    _settle(obj, None)


@event.listens_for(Mapper, "refresh", insert=True)
def _refreshed(obj, context, attrs):
    _settle(obj, attrs)


def _settle(obj, loaded):
    """Puts the plaintexts in an object the ORM loaded (the keys loaded, or
    None for all), as committed values (so it is not dirty), and notes in
    its state which encrypted columns hold legacy plaintext."""
    state = attributes.instance_state(obj)
    columns = _encrypted_columns(state.mapper)
    if not columns:
        return
    batch = _read_batch.get()
    if batch is not None:
        batch.objects.append(obj)
        if batch.undecrypted:
            batch.decrypt()
    noted = state.info.get(_LEGACY_KEYS, frozenset())
    legacy = noted
    for key, _ in columns:
        if key not in state.dict:
            continue
        stored = state.dict[key]
        if isinstance(stored, _PendingToken):
            if stored.error is not None:
                raise _located(stored.error, _column_name(state.mapper.columns[key]), state.identity) from stored.error
            read = stored.plaintext
        else:
            read = stored
        if isinstance(read, (_LegacyText, _LegacyBytes)):
            legacy = legacy | {key}
        elif key in legacy and (loaded is None or key in loaded):
            legacy = legacy - {key}
        value = _plain(read)
        if value is not stored:
            attributes.set_committed_value(obj, key, value)
    if legacy is not noted:
        state.info[_LEGACY_KEYS] = legacy


@event.listens_for(Session, "do_orm_execute")
def _decrypt_in_batches(orm_execute_state):
    state = orm_execute_state
    if not state.is_select or _streams(state):
        return None
    if not any(_encrypted_columns(m) for m in state.all_mappers):
        return None
    batch = _ReadBatch()
    reset = _read_batch.set(batch)
    try:
        try:
            result = state.invoke_statement()
            if result._unique_filter_state is not None:
                # Joined eager loads of collections: the rows must be made
                # unique, and freezing them would refuse to.
                result = result.unique()
            frozen = result.freeze()
        finally:
            _read_batch.reset(reset)
        if not batch.pending:
            return frozen()
        return batch.fill_rows(frozen)()
    except BaseException:
        batch.forget(state.session)
        raise


def _streams(state):
    options = state.execution_options
    return bool(options.get("yield_per") or options.get("stream_results") or state.load_options._yield_per)


_columns_of = weakref.WeakKeyDictionary()


def _encrypted_columns(mapper):
    """(attribute key, column type) of the mapper's encrypted columns."""
    found = _columns_of.get(mapper)
    if found is None:
        found = tuple(
            (prop.key, prop.columns[0].type)
            for prop in mapper.column_attrs
            if len(prop.columns) == 1 and isinstance(prop.columns[0].type, _Encrypted)
        )
        _columns_of[mapper] = found
    return found


# -- SQL expressions --------------------------------------------------------


def _is_sql(value):
    return isinstance(value, elements.ClauseElement) or hasattr(value, "__clause_element__")


def _stores_token(value, binds_take_column_type):
    """Whether value, given to an encrypted column in an INSERT or UPDATE,
    stores a token or NULL: a Python value or a bound parameter, which
    process_bind_param encrypts, NULL, or an expression that copies
    tokens (_copies_tokens). Any other SQL expression would store what it
    yields, in the clear. A bound parameter of no type takes the column's
    where binds_take_column_type (values() of one row)."""
    if hasattr(value, "__clause_element__"):
        value = value.__clause_element__()
    if not isinstance(value, elements.ClauseElement):
        return True
    if isinstance(value, elements.Label):
        value = value.element
    if isinstance(value, elements.Null):
        return True
    if isinstance(value, elements.BindParameter):
        return isinstance(value.type, _Encrypted) or (binds_take_column_type and isinstance(value.type, NullType))
    return _copies_tokens(value)


def _copies_tokens(expr):
    """Whether expr yields the tokens of an encrypted column as they are: a
    column of an encrypted type (a table's, a lightweight sa.column()'s,
    one of text().columns(), a subquery's that is one of these), a label
    of one, a scalar subquery selecting one, or type_coerce() to an
    encrypted type. The type given to sa.column() or type_coerce() is the
    app's word that the expression holds tokens; a function, a cast or
    arithmetic, whatever its type, yields what the database computes."""
    if isinstance(expr, elements.Label):
        expr = expr.element
    if isinstance(expr, selectable.ScalarSelect):
        return all(len(columns) == 1 and _copies_tokens(columns[0]) for columns in _selected(expr.element))
    if isinstance(expr, elements.TypeCoerce):
        return isinstance(expr.type, _Encrypted)
    if not (isinstance(expr, elements.ColumnClause) and isinstance(expr.type, _Encrypted)):
        return False
    # A subquery's column stands for what the subquery selects.
    return all(base is expr or _copies_tokens(base) for base in expr.base_columns)


def _selected(select):
    """The columns a SELECT yields, as a list per SELECT of a UNION (or
    other compound), whose rows they all give."""
    if isinstance(select, selectable.CompoundSelect):
        return [columns for each in select.selects for columns in _selected(each)]
    if isinstance(select, selectable.SelectStatementGrouping):
        return _selected(select.element)
    return [list(select.selected_columns)]


@event.listens_for(Engine, "before_execute")
def _refuse_sql_expressions(conn, clauseelement, multiparams, params, execution_options):
    """Refuses an INSERT or UPDATE, Core or ORM, that gives an encrypted
    column an SQL expression (values(secret=func.lower(...)),
    values(secret=Other.name), from_select() of a plain column, an upsert's
    SET): the database would store it unencrypted, and process_bind_param
    never sees it. Every Engine's, so the ORM's statements and its flush's
    too."""
    if not isinstance(clauseelement, dml.ValuesBase) or not _may_write_encrypted(clauseelement):
        return
    stmt = clauseelement
    # SQLAlchemy has no public view of what a statement writes; these are
    # its attributes in 1.4 and 2.0 (all but the upsert's, which only some
    # dialects' inserts have, fail loudly if they go).
    given = [(key, value, True) for key, value in list((stmt._values or {}).items()) + list(stmt._ordered_values or ())]
    for rows in stmt._multi_values:
        for row in rows:
            pairs = row.items() if isinstance(row, dict) else zip(stmt.table.c, row)
            given.extend((key, value, False) for key, value in pairs)
    if isinstance(stmt, dml.Insert) and stmt.select is not None:
        for columns in _selected(stmt.select):
            given.extend((key, value, False) for key, value in zip(stmt._select_names, columns))
    # ON CONFLICT DO UPDATE SET (PostgreSQL, SQLite), ON DUPLICATE KEY UPDATE (MySQL)
    upsert = getattr(stmt, "_post_values_clause", None)
    upsert_values = getattr(upsert, "update_values_to_set", None) or getattr(upsert, "update", {}).items()
    given.extend((key, value, True) for key, value in upsert_values)
    for key, value, binds_take_column_type in given:
        coltype = _column_type(stmt.table, key)
        if isinstance(coltype, _Encrypted) and not _stores_token(value, binds_take_column_type):
            raise coltype.refuse_expression()


def _may_write_encrypted(stmt):
    """False when stmt surely writes no encrypted column, cheaply, since
    the check runs before every INSERT and UPDATE of the process: its
    table has none, and no value of it is keyed by another table's
    encrypted column (a multi-table UPDATE)."""
    if _has_encrypted_column(stmt.table):
        return True
    keys = list(stmt._values or ()) + [key for key, _ in stmt._ordered_values or ()]
    return any(not isinstance(key, str) and isinstance(_column_type(stmt.table, key), _Encrypted) for key in keys)


# Table (or other FROM clause) -> whether it has a column of an encrypted
# type; _named notes the columns added later.
_has_encrypted = weakref.WeakKeyDictionary()


def _has_encrypted_column(table):
    # The ORM's statements name a copy of the table with annotations.
    table = table._deannotate()
    found = _has_encrypted.get(table)
    if found is None:
        found = _has_encrypted[table] = any(isinstance(column.type, _Encrypted) for column in table.c)
    return found


def _column_type(table, key):
    """The type of the column a statement's key (a column or its name) names."""
    if hasattr(key, "__clause_element__"):
        key = key.__clause_element__()
    if isinstance(key, str):
        column = table.c.get(key) if hasattr(table, "c") else None
        return column.type if column is not None else None
    return getattr(key, "type", None)
