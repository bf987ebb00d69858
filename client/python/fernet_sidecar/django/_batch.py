"""Batches: what makes a queryset of encrypted rows one DecryptBatch per
1000 values instead of one Decrypt per value.

Django converts each column of each row on its own (a field's
from_db_value), one row at a time, in SQLCompiler.apply_converters. Every
way of reading rows goes through that one method: model instances,
values(), values_list(), iterator(), select_related() (the related
models' columns are in the same rows), prefetch_related() (its own
queryset), get(), aggregates and raw(). So the app config wraps it, once,
in ready(): when the rows have encrypted columns, the wrapper reads up to
1000 values' worth of rows ahead, decrypts them in one batch, and runs the
other converters as Django would. A query with no encrypted column runs
Django's own method, untouched.

save() encrypts its values in one batch with no wrapper (see
fields.PendingEncryption). bulk_create() inserts in statements of its own
(500 rows on SQLite), and bulk_update() builds its CASE expressions from
getattr(obj, field), with no pre_save(): the wrappers of both give the
objects PendingEncryption values for the duration of the call, so that the
whole call encrypts in one batch. All three wrappers (save()'s is
Model.save_base) drop, at the end, the values made in the call that no
statement sent, so that a failed call leaves no plaintext in the thread.
"""

import contextlib
from itertools import islice

from django.db.models import Model
from django.db.models.expressions import Col
from django.db.models.query import QuerySet
from django.db.models.sql.compiler import SQLCompiler

from .. import _errors
from . import conf
from .fields import EncryptedFieldMixin, dropping_unsent

#: The most values one DecryptBatch carries (the client splits at this too).
MAX_BATCH_VALUES = 1000


def install():
    """Wraps SQLCompiler.apply_converters, QuerySet.bulk_create,
    QuerySet.bulk_update and Model.save_base, once."""
    if getattr(SQLCompiler.apply_converters, "_fernet_sidecar", False):
        return
    django_apply_converters = SQLCompiler.apply_converters
    django_bulk_create = QuerySet.bulk_create
    django_bulk_update = QuerySet.bulk_update
    django_save_base = Model.save_base

    def apply_converters(self, rows, converters):
        encrypted = _encrypted_columns(converters)
        if not encrypted:
            return django_apply_converters(self, rows, converters)
        return _decrypting(self, rows, converters, encrypted)

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        fields = [f for f in self.model._meta.concrete_fields if not getattr(f, "auto_now", False) and not getattr(f, "auto_now_add", False)]
        with _pending_values(objs, fields):
            return django_bulk_create(self, objs, *args, **kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        objs, fields = tuple(objs), list(fields)  # either may be a generator, read twice here
        with _pending_values(objs, [self.model._meta.get_field(name) for name in fields]):
            return django_bulk_update(self, objs, fields, batch_size)

    def save_base(self, *args, **kwargs):
        # pre_save() makes the values; a later field's pre_save() (a
        # FileField's storage, say) can fail before the statement is built.
        with dropping_unsent():
            return django_save_base(self, *args, **kwargs)

    apply_converters._fernet_sidecar = True
    bulk_create.alters_data = bulk_update.alters_data = save_base.alters_data = True
    SQLCompiler.apply_converters = apply_converters
    QuerySet.bulk_create = bulk_create
    QuerySet.bulk_update = bulk_update
    Model.save_base = save_base


@contextlib.contextmanager
def _pending_values(objs, fields):
    """Gives each object's encrypted fields PendingEncryption values for the
    duration, so that the whole call encrypts them in one batch when the
    first statement is compiled. The objects keep their own values after."""
    swapped = []
    with dropping_unsent():
        try:
            for field in fields:
                if not isinstance(field, EncryptedFieldMixin):
                    continue
                for obj in objs:
                    value = getattr(obj, field.attname)
                    pending = field.pending_encryption(value)
                    if pending is not value:
                        obj.__dict__[field.attname] = pending
                        swapped.append((obj, field.attname, value))
            yield
        finally:
            for obj, attname, value in swapped:
                obj.__dict__[attname] = value


def _encrypted_columns(converters):
    """{position: (converters before, field, converters after, expression)}
    of the columns an encrypted field's from_db_value converts."""
    found = {}
    for pos, (convs, expression) in converters.items():
        for i, conv in enumerate(convs):
            field = getattr(conv, "__self__", None)
            if isinstance(field, EncryptedFieldMixin) and getattr(conv, "__name__", None) == "from_db_value":
                found[pos] = (convs[:i], field, convs[i + 1 :], expression)
                break
    return found


def _pk_positions(compiler, encrypted):
    """{position of an encrypted column: position of its row's primary key},
    where the query selects it, for error messages."""
    select = [s[0] for s in (compiler.select or ())]
    out = {}
    for pos, (_, _, _, expression) in encrypted.items():
        if not isinstance(expression, Col):
            continue
        pk = expression.target.model._meta.pk
        for i, selected in enumerate(select):
            if isinstance(selected, Col) and selected.alias == expression.alias and selected.target == pk:
                out[pos] = i
                break
    return out


def _decrypting(compiler, rows, converters, encrypted):
    connection = compiler.connection
    others = [(pos, convs, expression) for pos, (convs, expression) in converters.items() if pos not in encrypted]
    pk_positions = _pk_positions(compiler, encrypted)
    rows_per_batch = max(1, MAX_BATCH_VALUES // len(encrypted))
    fernet, ttl = conf.fernet(), conf.ttl()
    rows = map(list, rows)
    while True:
        batch = list(islice(rows, rows_per_batch))
        if not batch:
            return
        for row in batch:
            for pos, convs, expression in others:
                value = row[pos]
                for conv in convs:
                    value = conv(value, expression, connection)
                row[pos] = value
        cells, tokens = [], []
        for pos, (before, _, after, expression) in encrypted.items():
            for row in batch:
                value = row[pos]
                for conv in before:
                    value = conv(value, expression, connection)
                if value is None:
                    row[pos] = _convert(None, after, expression, connection)
                else:
                    cells.append((row, pos))
                    tokens.append(value)
        results = fernet.decrypt_many(tokens, ttl, return_exceptions=True) if tokens else []
        try:
            for (row, pos), token, result in zip(cells, tokens, results):
                _, field, after, expression = encrypted[pos]
                if isinstance(result, _errors.InvalidToken):
                    pk_pos = pk_positions.get(pos)
                    value = field.undecryptable(token, result, row[pk_pos] if pk_pos is not None else None)
                elif isinstance(result, Exception):
                    raise result
                else:
                    value = field.from_plaintext(result)
                row[pos] = _convert(value, after, expression, connection)
        except BaseException:
            # The traceback keeps this frame, and error reporters (Sentry,
            # Django's debug page) send its locals: they must not hold the
            # other rows' plaintexts.
            batch = cells = results = row = value = result = None
            raise
        yield from batch


def _convert(value, convs, expression, connection):
    for conv in convs:
        value = conv(value, expression, connection)
    return value
