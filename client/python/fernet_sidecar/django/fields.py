"""Model fields stored as Fernet tokens made by the sidecar (or, in tests,
by the in-process backend).

Each field is its Django counterpart for everything in Python (forms, the
admin, validation, full_clean()), and a Fernet token in a text column in
the database. The token holds the value's string form as UTF-8, as
django-fernet-encrypted-fields writes it (``str(value)``; the whole JSON
text for EncryptedJSONField; the bytes themselves for EncryptedBinaryField),
so a column that library, django-encrypted-model-fields or an app's own
``Fernet(key).encrypt(...)`` wrote reads as it is.

Reading a queryset decrypts its values in batches, and saving encrypts the
values of one statement in one batch: see docs/django.md, "Batches".
"""

import contextlib
import datetime
import json
import logging
import threading

from django.core import checks
from django.core.exceptions import FieldError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models.expressions import Case, Expression, F, Value, When
from django.db.models.functions import Cast
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.functional import cached_property

from .. import _errors, _legacy
from . import conf

__all__ = [
    "EncryptedFieldMixin",
    "EncryptedTextField",
    "EncryptedCharField",
    "EncryptedEmailField",
    "EncryptedIntegerField",
    "EncryptedBooleanField",
    "EncryptedDateField",
    "EncryptedDateTimeField",
    "EncryptedBinaryField",
    "EncryptedJSONField",
]

logger = logging.getLogger("fernet_sidecar.django")

_WHY_NO_LOOKUPS = (
    "%s is encrypted: every token is different, even for equal values, so the database "
    "cannot compare, order or search it; only %s__isnull works. Filter in Python, or keep "
    "a separate keyed hash column for lookups."
)


class EncryptedFieldMixin:
    """What makes a Django field encrypted. Put it first:
    ``class EncryptedSlugField(EncryptedFieldMixin, models.SlugField)``.

    :param legacy_plaintext: a shape of ``fernet_sidecar.LEGACY_SHAPES``
        ("totp-base32", "totp-hex"): a stored value the backend calls
        MALFORMED that has this shape reads as itself (logged at WARNING),
        and the next save() encrypts it. Off (None) by default.
    """

    def __init__(self, *args, legacy_plaintext=None, **kwargs):
        self.legacy_plaintext = legacy_plaintext
        self._legacy_count = 0
        self._legacy_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.legacy_plaintext is not None:
            kwargs["legacy_plaintext"] = self.legacy_plaintext
        return name, path, args, kwargs

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        if self.legacy_plaintext is not None and self.legacy_plaintext not in _legacy.LEGACY_SHAPES:
            errors.append(
                checks.Error(
                    "legacy_plaintext must be one of %s, or None." % ", ".join(_legacy.LEGACY_SHAPES),
                    obj=self,
                    id="fernet_sidecar.E101",
                )
            )
        if self.primary_key or self._unique or self.db_index:
            errors.append(
                checks.Error(
                    "An encrypted field cannot be a primary key, unique or indexed: equal values "
                    "have different tokens.",
                    hint="Remove primary_key, unique and db_index.",
                    obj=self,
                    id="fernet_sidecar.E102",
                )
            )
        for option in self._model_options_naming_me():
            errors.append(
                checks.Error(
                    "An encrypted field cannot be in %s: equal values have different tokens, and "
                    "full_clean(), model forms and the admin would filter on it." % option,
                    hint="Remove %s from %s." % (self.name, option),
                    obj=self,
                    id="fernet_sidecar.E102",
                )
            )
        return errors

    def _model_options_naming_me(self):
        """The model's Meta options that make the database compare this
        field's values: unique_together, index_together, indexes and
        constraints."""
        meta = getattr(getattr(self, "model", None), "_meta", None)
        if meta is None:
            return []
        named = []
        for option in ("unique_together", "index_together"):
            if any(self.name in names for names in getattr(meta, option, ())):
                named.append("Meta.%s" % option)
        for option in ("indexes", "constraints"):
            for item in getattr(meta, option, ()):
                names = [name.lstrip("-") for name in getattr(item, "fields", ())]
                for expression in getattr(item, "expressions", ()):
                    parts = expression.flatten() if hasattr(expression, "flatten") else [expression]
                    names += [part.name for part in parts if isinstance(part, F)]
                if self.name in names:
                    named.append("Meta.%s (%s)" % (option, getattr(item, "name", None) or type(item).__name__))
        return named

    def get_internal_type(self):
        # The column holds a token, whatever the value's type; the backends'
        # converters for the value's own type must not touch it either.
        return "TextField"

    # -- value <-> plaintext -------------------------------------------------

    def to_plaintext(self, value):
        """The bytes encrypted for value, a prepared (get_prep_value) Python value."""
        return str(value).encode("utf-8")

    def from_plaintext(self, plaintext):
        """The Python value of decrypted bytes."""
        return self.to_python(plaintext.decode("utf-8"))

    # -- writing -------------------------------------------------------------

    def get_db_prep_value(self, value, connection, prepared=False):
        # One value on its own (QuerySet.update(), fixtures): one Encrypt.
        # save() and bulk_create() go through pre_save and batch.
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        return conf.fernet().encrypt(self.to_plaintext(value)).decode("ascii")

    def pre_save(self, model_instance, add):
        return self.pending_encryption(super().pre_save(model_instance, add))

    def pending_encryption(self, value):
        """value, to be encrypted with the rest of its statement."""
        if value is None or isinstance(value, PendingEncryption):
            return value
        if hasattr(value, "resolve_expression"):
            self._refuse_expression()
        return PendingEncryption(self, value)

    def get_placeholder(self, value, compiler, connection):
        # Django asks for the placeholder of every value of an UPDATE,
        # expressions included (QuerySet.update(), save(), bulk_update()):
        # the one place an expression meant for this column passes through
        # the field before the database stores what it yields.
        if hasattr(value, "resolve_expression") and not _encrypts(value):
            self._refuse_expression()
        return "%s"  # a token in a text column, whatever the field's own type

    def _refuse_expression(self):
        raise TypeError(
            "%s is encrypted: it takes a value, not an SQL expression, which the database "
            "would store unencrypted." % self._label()
        )

    # -- reading -------------------------------------------------------------

    def from_db_value(self, value, expression, connection):
        # A queryset read in a batch (fernet_sidecar.django in
        # INSTALLED_APPS) does not get here: see _batch.apply_converters.
        if value is None:
            return None
        try:
            plaintext = conf.fernet().decrypt(value, ttl=conf.ttl())
        except _errors.InvalidToken as exc:
            return self.undecryptable(value, exc, None)
        return self.from_plaintext(plaintext)

    def undecryptable(self, stored, exc, pk):
        """The value of a stored value the backend refused with exc: legacy
        plaintext reads as itself; anything else raises InvalidToken naming
        the model, the field and the row, never the value."""
        if exc.reason == _errors.MALFORMED and self.legacy_plaintext and _legacy.looks_like(self.legacy_plaintext, stored):
            self._count_legacy()
            return self.to_python(stored)
        row = "pk=%r" % (pk,) if pk is not None else "a row whose primary key the query did not select"
        raise _errors.InvalidToken(
            "%s of %s does not decrypt (%s): the key it was made with is not loaded, or the value is not a token"
            % (self._label(), row, exc.reason),
            exc.reason,
        ) from exc

    def _count_legacy(self):
        with self._legacy_lock:
            self._legacy_count += 1
            count = self._legacy_count
        # The first, then every power of ten: a table of them does not
        # flood the log, and the count still shows progress.
        if count == 1 or str(count).strip("0") == "1":
            logger.warning(
                "%s: read %d legacy plaintext value(s) (%s) so far; save() encrypts them, or run "
                "manage.py fernet_reencrypt --encrypt-plaintext",
                self._label(),
                count,
                self.legacy_plaintext,
            )

    # -- lookups -------------------------------------------------------------

    def get_lookup(self, lookup_name):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        if lookup_name in ("exact", "iexact"):
            return _ExactNone  # filter(secret=None): Django makes it isnull
        raise FieldError(_WHY_NO_LOOKUPS % (self._label(), self.name))

    def get_transform(self, lookup_name):
        raise FieldError(_WHY_NO_LOOKUPS % (self._label(), self.name))

    def _label(self):
        model = getattr(self, "model", None)
        if model is None:
            return self.name or type(self).__name__
        return "%s.%s" % (model._meta.label, self.name)


class _ExactNone(Exact):
    """exact (and iexact) with None, which Django turns into isnull when it
    builds the lookup; refused, as every other lookup, with a value."""

    def __init__(self, lhs, rhs):
        if rhs is not None:
            field = lhs.output_field
            raise FieldError(_WHY_NO_LOOKUPS % (field._label(), field.name))
        super().__init__(lhs, rhs)


class PendingEncryption(Expression):
    """A field's value on its way into an INSERT or UPDATE.

    pre_save() makes one per value; when the statement is compiled, the
    first to be compiled encrypts every PendingEncryption this thread made
    and has not encrypted yet, in one EncryptBatch (split at 1000). Django
    builds every value of a statement (all the rows of a bulk_create batch)
    before it compiles any, so one statement makes one RPC.
    """

    def __init__(self, field, value):
        super().__init__(output_field=field)
        self.plaintext = field.to_plaintext(field.get_prep_value(value))
        self.token = None
        _pending().append(self)

    # Identity, not the value: two equal values are two tokens.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def resolve_expression(self, *args, **kwargs):
        return self

    def as_sql(self, compiler, connection):
        if self.token is None:
            _encrypt_pending(self)
        return "%s", [self.token]

    def __repr__(self):
        return "<PendingEncryption of %s>" % self.output_field._label()


def _encrypts(expression):
    """Whether every value expression can yield is encrypted or NULL: a
    PendingEncryption, a Value the field itself prepares, or what
    bulk_update() builds of them (CASE WHEN pk = ... THEN <value>, cast on
    PostgreSQL)."""
    if isinstance(expression, PendingEncryption):
        return True
    if isinstance(expression, Value):
        return expression.value is None or isinstance(expression._output_field_or_none, EncryptedFieldMixin)
    if isinstance(expression, When):
        return _encrypts(expression.result)
    if isinstance(expression, (Case, Cast)):
        return all(_encrypts(e) for e in expression.get_source_expressions())
    return False


_local = threading.local()


def _pending():
    if not hasattr(_local, "pending"):
        _local.pending = []
    return _local.pending


@contextlib.contextmanager
def dropping_unsent():
    """Drops, at the end, the PendingEncryption values made inside that no
    statement compiled (the call failed before it built one, or built
    none): their plaintext must not wait in the thread for its next save."""
    before = list(_pending())  # alive, so that no new value reuses an id
    kept = {id(p) for p in before}
    try:
        yield
    finally:
        _local.pending = [p for p in _pending() if id(p) in kept and p.token is None]


def _encrypt_pending(first):
    batch = [p for p in _pending() if p.token is None]
    _local.pending = []
    if not any(p is first for p in batch):
        batch.append(first)
    tokens = conf.fernet().encrypt_many([p.plaintext for p in batch])
    for pending, token in zip(batch, tokens):
        pending.token = token.decode("ascii")


class EncryptedTextField(EncryptedFieldMixin, models.TextField):
    pass


class EncryptedCharField(EncryptedFieldMixin, models.CharField):
    """max_length limits the value, not the token; the column is text."""


class EncryptedEmailField(EncryptedFieldMixin, models.EmailField):
    pass


class EncryptedIntegerField(EncryptedFieldMixin, models.IntegerField):
    @cached_property
    def validators(self):
        # IntegerField's range comes from the column type, which is text
        # here: use the range of an integer column (32 bits), whatever the
        # database, so that the value fits one if the field ever goes back.
        validators_ = [*self.default_validators, *self._validators]
        min_value, max_value = BaseDatabaseOperations.integer_field_ranges["IntegerField"]
        if min_value is not None and not any(isinstance(v, MinValueValidator) for v in validators_):
            validators_.append(MinValueValidator(min_value))
        if max_value is not None and not any(isinstance(v, MaxValueValidator) for v in validators_):
            validators_.append(MaxValueValidator(max_value))
        return validators_


class EncryptedBooleanField(EncryptedFieldMixin, models.BooleanField):
    """Stores "True" or "False"."""


class EncryptedDateField(EncryptedFieldMixin, models.DateField):
    """Stores the ISO date, "2024-05-17"."""


class EncryptedDateTimeField(EncryptedFieldMixin, models.DateTimeField):
    """Stores str(datetime): "2024-05-17 09:30:00.250000+00:00" (aware when
    USE_TZ, as DateTimeField makes it)."""

    def from_plaintext(self, plaintext):
        value = super().from_plaintext(plaintext)
        if value is not None and timezone.is_naive(value) and self._use_tz():
            value = timezone.make_aware(value, datetime.timezone.utc)
        return value

    @staticmethod
    def _use_tz():
        from django.conf import settings

        return settings.USE_TZ


class EncryptedBinaryField(EncryptedFieldMixin, models.BinaryField):
    """Stores the bytes themselves."""

    def to_plaintext(self, value):
        return bytes(value)

    def from_plaintext(self, plaintext):
        return bytes(plaintext)


class EncryptedJSONField(EncryptedFieldMixin, models.JSONField):
    """Stores the whole JSON text as one token. (django-fernet-encrypted-fields
    encrypts each leaf instead: its JSON columns do not read here.)"""

    def _check_supported(self, databases):
        return []  # a text column: no JSON support needed

    def get_prep_value(self, value):
        return value  # json.dumps happens in to_plaintext

    def to_plaintext(self, value):
        return json.dumps(value, cls=self.encoder).encode("utf-8")

    def from_plaintext(self, plaintext):
        return json.loads(plaintext.decode("utf-8"), cls=self.decoder)
