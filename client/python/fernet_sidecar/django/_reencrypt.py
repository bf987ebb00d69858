"""The fields to re-encrypt, and the walk (fernet_sidecar._walk) of one of
them over a Django connection: what fernet_reencrypt and the migration
operations share."""

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, transaction

from .._walk import Database, walk
from . import conf
from .fields import EncryptedFieldMixin


def encrypted_fields(labels=()):
    """[(model, field)] for labels "app_label.Model.field", "app_label.Model"
    or "app_label"; every encrypted field of every installed model when
    there are none. A field is walked on the table that holds it: its own
    model's, not a child's or a proxy's. LookupError says which label is
    wrong."""
    every = [
        (model, field)
        for model in apps.get_models()
        if not model._meta.proxy
        for field in model._meta.local_concrete_fields
        if isinstance(field, EncryptedFieldMixin)
    ]
    if not labels:
        return every
    chosen = []
    for label in labels:
        parts = label.split(".")
        if len(parts) > 3:
            raise LookupError("%r: want app_label, app_label.Model or app_label.Model.field" % label)
        app_config = apps.get_app_config(parts[0])
        model = app_config.get_model(parts[1]) if len(parts) > 1 else None
        if len(parts) == 3:
            try:
                field = model._meta.get_field(parts[2])
            except FieldDoesNotExist:
                raise LookupError("%s has no field %r" % (model._meta.label, parts[2])) from None
            if not isinstance(field, EncryptedFieldMixin):
                raise LookupError("%s.%s is not an encrypted field" % (model._meta.label, parts[2]))
            matches = [(m, f) for m, f in every if f is field]
        else:
            matches = [(m, f) for m, f in every if m._meta.app_label == app_config.label and (model is None or m is model)]
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def walk_field(model, field, using="default", *, legacy_plaintext=None, **options):
    """fernet_sidecar._walk.walk of field's column, over the connection
    named using; options as walk's. legacy_plaintext defaults to the
    field's own."""
    connection = connections[using]
    # The driver's own connection, not Django's cursors: with DEBUG on,
    # those keep every statement's parameters in connection.queries and log
    # them (django.db.backends), and the walk's parameters are tokens and,
    # with encrypt_plaintext, legacy plaintext. Django's atomic() still
    # makes each batch's transaction on it.
    connection.ensure_connection()
    db = Database(
        connection.connection,
        paramstyle=connection.Database.paramstyle,
        quote=connection.ops.quote_name,
        atomic=lambda: transaction.atomic(using=using),
    )
    return walk(
        db,
        conf.fernet(),
        model._meta.db_table,
        field.column,
        model._meta.pk.column,
        legacy_plaintext=legacy_plaintext or field.legacy_plaintext,
        **options,
    )
