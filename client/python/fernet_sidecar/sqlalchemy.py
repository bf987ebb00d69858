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
  Session.get, refreshes of expired attributes, selectin loads) is run to
  the end, its tokens are decrypted with one decrypt_many per column type,
  and the plaintexts are put in the loaded objects and rows. Such a query is
  buffered (as .all() is); a query with yield_per or stream_results is not,
  and decrypts value by value.

Anything else (Core statements, a joined eager load's related columns)
decrypts and encrypts value by value, with the same results.
"""

import contextvars
import weakref

from sqlalchemy import LargeBinary, String, Text, event
from sqlalchemy.orm import Mapper, Session, attributes
from sqlalchemy.types import TypeDecorator

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
            read; they become tokens when written again (or with
            ``flask fernet reencrypt --encrypt-plaintext``).
        :param fernet: the client of this column, or a callable returning
            one; without it, the one given to configure().
        """
        if legacy_plaintext is not None:
            check_shape(legacy_plaintext)
        super().__init__(*args, **kwargs)
        self.ttl = ttl
        self.legacy_plaintext = legacy_plaintext
        self.fernet = fernet

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
        made = _flush_tokens.get()
        token = made.pop(value) if made is not None else None
        if token is None:
            token = self.client().encrypt(self._to_bytes(value))
        return self._store(token)

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
            return self._legacy_or_raise(token, err)

    def process_literal_param(self, value, dialect):
        raise NotImplementedError("an encrypted value cannot be written as a SQL literal")

    # -- the rest ----------------------------------------------------------

    def client(self):
        fernet = self.fernet if self.fernet is not None else _default_fernet
        if fernet is None:
            raise RuntimeError(
                "no Fernet client for this encrypted column: pass fernet= to the type, "
                "call fernet_sidecar.sqlalchemy.configure(), or use the Flask extension"
            )
        return fernet() if callable(fernet) else fernet

    def _legacy_or_raise(self, stored, err):
        """The plaintext of a legacy row, or err raised."""
        if self.legacy_plaintext and err.reason == _errors.MALFORMED and looks_like(self.legacy_plaintext, stored):
            return self._from_bytes(stored.encode("ascii"))
        raise err


class EncryptedString(_Encrypted):
    """A str, stored as a token in a VARCHAR. ``length`` is the column's, so
    it must hold the token: a plaintext of n UTF-8 bytes makes a token of
    4 * ceil((73 + 16 * (n // 16)) / 3) characters (a 32-byte TOTP secret:
    140)."""

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
    """Tokens made ahead for values a flush is about to bind. They are keyed
    by the value object's identity (the flush binds the very objects the
    instances hold) and used once each, so two rows never share a token."""

    def __init__(self):
        self._tokens = {}  # id(value) -> (value, [tokens])

    def put(self, value, token):
        self._tokens.setdefault(id(value), (value, []))[1].append(token)

    def pop(self, value):
        entry = self._tokens.get(id(value))
        if entry is None or entry[0] is not value or not entry[1]:
            return None
        return entry[1].pop()


@event.listens_for(Session, "before_flush")
def _encrypt_before_flush(session, flush_context, instances):
    pending = {}  # column type -> [values]
    for obj in list(session.new) + list(session.dirty):
        state = attributes.instance_state(obj)
        for key, coltype in _encrypted_columns(state.mapper):
            if key not in state.dict:
                continue
            value = state.dict[key]
            if value is None or (state.key is not None and not attributes.get_history(obj, key).added):
                continue
            pending.setdefault(coltype, []).append(value)
    _flush_tokens.set(None)
    if not pending:
        return
    made = _FlushTokens()
    for coltype, values in pending.items():
        tokens = coltype.client().encrypt_many([coltype._to_bytes(v) for v in values])
        for value, token in zip(values, tokens):
            made.put(value, token)
    _flush_tokens.set(made)


@event.listens_for(Session, "after_flush_postexec")
def _forget_flush_tokens(session, flush_context):
    _flush_tokens.set(None)


# -- batched decryption of a query's results --------------------------------

# The batch of the ORM SELECT running in this context, if any.
_read_batch = contextvars.ContextVar("fernet_sidecar_read_batch", default=None)


class _PendingToken:
    """A token read in a batch, standing in for its plaintext until the batch
    is decrypted. Never seen outside this module."""

    __slots__ = ("coltype", "token", "plaintext")

    def __init__(self, coltype, token):
        self.coltype = coltype
        self.token = token


class _ReadBatch:
    def __init__(self):
        self.pending = []
        self.objects = []

    def add(self, coltype, token):
        pending = _PendingToken(coltype, token)
        self.pending.append(pending)
        return pending

    def decrypt(self):
        """Decrypts every token, one decrypt_many per column type."""
        by_type = {}
        for pending in self.pending:
            by_type.setdefault(pending.coltype, []).append(pending)
        for coltype, group in by_type.items():
            results = coltype.client().decrypt_many([s.token for s in group], coltype.ttl, return_exceptions=True)
            for pending, result in zip(group, results):
                if isinstance(result, _errors.InvalidToken):
                    pending.plaintext = coltype._legacy_or_raise(pending.token, result)
                elif isinstance(result, Exception):
                    raise result
                else:
                    pending.plaintext = coltype._from_bytes(result)

    def forget(self, session):
        """After a failure, expires what the objects loaded still hold
        encrypted: the next access loads it again."""
        for obj in self.objects:
            pending = [k for k, v in attributes.instance_state(obj).dict.items() if isinstance(v, _PendingToken)]
            if pending:
                session.expire(obj, pending)

    def fill(self, frozen):
        """Puts the plaintexts in the objects loaded; the frozen result's
        rows with their plaintexts."""
        for obj in self.objects:
            state = attributes.instance_state(obj)
            for key, value in list(state.dict.items()):
                if isinstance(value, _PendingToken):
                    attributes.set_committed_value(obj, key, value.plaintext)
        rows = [[v.plaintext if isinstance(v, _PendingToken) else v for v in row] for row in frozen.rewrite_rows()]
        return frozen.with_new_rows(rows)


@event.listens_for(Mapper, "load")
def _loaded(obj, context):
    batch = _read_batch.get()
    if batch is not None and _encrypted_columns(attributes.instance_state(obj).mapper):
        batch.objects.append(obj)


@event.listens_for(Mapper, "refresh")
def _refreshed(obj, context, attrs):
    _loaded(obj, context)


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
        batch.decrypt()
        return batch.fill(frozen)()
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
