"""Re-encrypting one column of one table in place, over any DB-API
connection: the walk behind Django's `manage.py fernet_reencrypt` and its
migration operations, and Flask's `flask fernet reencrypt`.

It walks the table by primary key in batches. Each batch is one SELECT, one
ReEncryptBatch (rotate_many) and one transaction of conditional writes:

    UPDATE table SET column = <new> WHERE pk = <pk> AND column = <old>

so a row the app wrote between the read and the write keeps the app's
value (it counts as a conflict, and a rerun picks it up). Only rows whose
token changed are written. Each batch commits on its own: an interrupted
walk loses nothing, and a rerun skips what is already under the primary key.

Nothing this module logs, raises or reports holds a token, a plaintext or
a key: only counts, key ids, reasons and primary keys.
"""

import contextlib
from collections import Counter
from typing import Callable, Optional

from . import _errors, _legacy

DEFAULT_BATCH_SIZE = 1000

_PLACEHOLDERS = {
    "qmark": lambda i: "?",
    "format": lambda i: "%s",
    "pyformat": lambda i: "%%(p%d)s" % i,
    "named": lambda i: ":p%d" % i,
    "numeric": lambda i: ":%d" % (i + 1),
}


class Database:
    """A DB-API 2 connection as the walk uses it.

    :param connection: has cursor(); and commit() and rollback() unless
        atomic is given.
    :param paramstyle: the driver's paramstyle: qmark, format, pyformat,
        named or numeric (Django's cursors take "format" on every backend;
        SQLAlchemy says engine.dialect.paramstyle).
    :param quote: quotes an identifier (Django: connection.ops.quote_name;
        SQLAlchemy: engine.dialect.identifier_preparer.quote).
    :param atomic: makes the context manager of one transaction (Django:
        lambda: transaction.atomic(using=alias)); None commits after each
        batch and rolls back a batch that fails.
    """

    def __init__(self, connection, *, paramstyle: str, quote: Callable[[str], str], atomic=None):
        if paramstyle not in _PLACEHOLDERS:
            raise ValueError("paramstyle must be one of %s, not %r" % (", ".join(sorted(_PLACEHOLDERS)), paramstyle))
        self.connection = connection
        self.paramstyle = paramstyle
        self.quote = quote
        self._atomic = atomic

    def sql(self, template: str, params: list):
        """template with {} for each parameter, in this driver's style."""
        marks = [_PLACEHOLDERS[self.paramstyle](i) for i in range(len(params))]
        if self.paramstyle in ("pyformat", "named"):
            return template.format(*marks), {"p%d" % i: p for i, p in enumerate(params)}
        return template.format(*marks), list(params)

    @contextlib.contextmanager
    def transaction(self):
        if self._atomic is not None:
            with self._atomic():
                yield
            return
        try:
            yield
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    @contextlib.contextmanager
    def cursor(self):
        cursor = self.connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


class Report:
    """What a walk found and did, in counts and key ids."""

    def __init__(self, table: str, column: str, check: bool = False):
        self.table = table
        self.column = column
        self.check = check  #: a count only: nothing was to be written
        self.rows = 0  #: rows read
        self.null = 0  #: NULL values, left alone
        self.primary = 0  #: tokens already under the primary key
        #: rows under a decrypt-only key, by key id (known when checking)
        self.decrypt_only = Counter()
        self.rotated = 0  #: tokens re-encrypted (or, dry run, that would be)
        self.legacy = 0  #: legacy plaintext values found
        self.encrypted = 0  #: of those, encrypted (or, dry run, that would be)
        self.undecryptable = Counter()  #: rows no key reads, by reason
        self.undecryptable_pks = []  #: their primary keys (the first 20)
        self.conflicts = 0  #: rows the app changed between read and write: not written
        self.written = 0  #: rows updated
        self.plaintext_written = 0  #: of those, legacy plaintext encrypted
        self.not_written = 0  #: rows a check or dry run would have updated
        self.last_pk = None  #: the last primary key walked

    def pending(self) -> int:
        """Rows this walk leaves off the primary key, NULLs aside: 0 means
        the column is done."""
        return (
            sum(self.decrypt_only.values())
            + self.not_written
            + self.legacy
            - self.encrypted
            + sum(self.undecryptable.values())
            + self.conflicts
        )

    def lines(self):
        """The summary, one (label, value) per line."""
        out = [("rows", self.rows), ("NULL", self.null), ("under the primary key", self.primary)]
        for key_id, n in sorted(self.decrypt_only.items()):
            out.append(("under decrypt-only key %s" % key_id, n))
        if not self.check:
            out.append(("to re-encrypt" if self.not_written else "re-encrypted", self.rotated))
        out.append(("legacy plaintext", self.legacy))
        if self.legacy and not self.check:
            out.append(("plaintext encrypted", self.encrypted))
        for reason, n in sorted(self.undecryptable.items()):
            out.append(("undecryptable (%s)" % reason, n))
        if self.undecryptable_pks:
            out.append(("  undecryptable pks", ", ".join(str(pk) for pk in self.undecryptable_pks)))
        if not self.check:
            out.append(("changed by the app meanwhile (not written)", self.conflicts))
            out.append(("rows written", self.written))
        return out


def walk(
    db: Database,
    fernet,
    table: str,
    column: str,
    pk: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    check: bool = False,
    dry_run: bool = False,
    legacy_plaintext: Optional[str] = None,
    encrypt_plaintext: bool = False,
    progress: Optional[Callable[[Report], None]] = None,
    monitor=None,
) -> Report:
    """Re-encrypts table.column under fernet's primary key.

    :param fernet: a SidecarFernet or InProcessFernet.
    :param pk: the table's primary key column (one column, ordered).
    :param check: count rows by key id (with inspect_many where the backend
        has it, else rotate_many and decrypt_info), and write nothing.
    :param dry_run: count what would be written, and write nothing.
    :param legacy_plaintext: a shape of fernet_sidecar.LEGACY_SHAPES: values
        the backend calls MALFORMED that have it count as legacy plaintext.
    :param encrypt_plaintext: also encrypt those in place (needs
        legacy_plaintext).
    :param progress: called with the report after each batch.
    :param monitor: told how the walk goes (a
        fernet_sidecar._pushgateway.Run): started(rows to scan)
        first, progressed(report) after each batch, and finished(report,
        error) at the end, with what the walk raised or None.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if legacy_plaintext is not None:
        _legacy.check_shape(legacy_plaintext)
    elif encrypt_plaintext:
        raise ValueError("encrypt_plaintext needs a legacy_plaintext shape")
    q = db.quote
    first = "SELECT %s, %s FROM %s ORDER BY %s LIMIT %d" % (q(pk), q(column), q(table), q(pk), batch_size)
    after = "SELECT %s, %s FROM %s WHERE %s > {} ORDER BY %s LIMIT %d" % (q(pk), q(column), q(table), q(pk), q(pk), batch_size)
    update = "UPDATE %s SET %s = {} WHERE %s = {} AND %s = {}" % (q(table), q(column), q(pk), q(column))
    report = Report(table, column, check)
    try:
        if monitor is not None:
            with db.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM %s" % q(table))
                monitor.started(cursor.fetchone()[0])
        while True:
            with db.cursor() as cursor:
                if report.last_pk is None:
                    cursor.execute(first)
                else:
                    cursor.execute(*db.sql(after, [report.last_pk]))
                rows = cursor.fetchall()
            if not rows:
                break
            report.rows += len(rows)
            report.last_pk = rows[-1][0]
            writes = _batch(fernet, rows, report, check, legacy_plaintext, encrypt_plaintext)
            if check or dry_run:
                report.not_written += len(writes)
            elif writes:
                with db.transaction(), db.cursor() as cursor:
                    for row_pk, old, new, plaintext in writes:
                        cursor.execute(*db.sql(update, [new, row_pk, old]))
                        if cursor.rowcount == 1:
                            report.written += 1
                            report.plaintext_written += plaintext
                        else:
                            report.conflicts += 1
            if monitor is not None:
                monitor.progressed(report)
            if progress is not None:
                progress(report)
    except BaseException as exc:
        if monitor is not None:
            monitor.finished(report, exc)
        raise
    if monitor is not None:
        monitor.finished(report)
    return report


def _batch(fernet, rows, report, check, legacy_plaintext, encrypt_plaintext):
    """Counts one batch into report, and returns its writes: (pk, old,
    new, whether old is legacy plaintext), old as the driver gave it and
    new of the same type (bytes for a binary value), so that the write's
    WHERE column = old matches on every database."""
    stored = [(row_pk, _bytes_or_text(value)) for row_pk, value in rows if value is not None]
    report.null += len(rows) - len(stored)
    tokens = [_text(value) for _, value in stored]
    # A check needs no new tokens: inspect_many (no plaintext crosses the
    # wire) where the backend has it.
    inspecting = check and hasattr(fernet, "inspect_many")
    if inspecting:
        results = fernet.inspect_many(tokens, return_exceptions=True)
    else:
        results = fernet.rotate_many(tokens, return_exceptions=True)
    writes, plaintexts = [], []
    for (row_pk, stored_value), old, result in zip(stored, tokens, results):
        if isinstance(result, _errors.InvalidToken):
            if result.reason == _errors.MALFORMED and legacy_plaintext and _legacy.looks_like(legacy_plaintext, old):
                report.legacy += 1
                plaintexts.append((row_pk, stored_value, old))
                continue
            report.undecryptable[result.reason] += 1
            if len(report.undecryptable_pks) < 20:
                report.undecryptable_pks.append(row_pk)
            continue
        if isinstance(result, Exception):
            raise result
        if check:
            info = result if inspecting else (None if result.decode("ascii") == old else fernet.decrypt_info(old))
            if info is None or not info.needs_reencrypt:
                report.primary += 1
            else:
                report.decrypt_only[info.key_id] += 1
            continue
        if result.decode("ascii") == old:
            report.primary += 1
            continue
        report.rotated += 1
        writes.append((row_pk, stored_value, _like(stored_value, result), False))
    if encrypt_plaintext and plaintexts and not check:
        new_tokens = fernet.encrypt_many([text.encode("utf-8") for _, _, text in plaintexts])
        for (row_pk, stored_value, _), token in zip(plaintexts, new_tokens):
            report.encrypted += 1
            writes.append((row_pk, stored_value, _like(stored_value, token), True))
    return writes


def _bytes_or_text(value):
    # A text column reads as str; some drivers give bytes or memoryview
    # for binary ones (and SQLite for a BLOB in any column).
    return value.tobytes() if isinstance(value, memoryview) else value


def _text(value):
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _like(stored_value, token):
    """token (bytes), as the type the column gave: bytes for bytes. SQLite
    never finds a BLOB equal to a text value."""
    return token if isinstance(stored_value, bytes) else token.decode("ascii")
