"""What the Django suites share: the keys, raw column access, and a
backend wrapper that counts RPCs."""

import math
from collections import Counter
from unittest import mock

from cryptography.fernet import Fernet
from django.db import connections

from fernet_sidecar.django import conf

from .. import env

#: What the client sends as one RPC at most (SidecarFernet's default).
BATCH = 1000


def keys():
    """Fernet objects of the primary key and the old (decrypt-only) key."""
    return Fernet(env.get("PRIMARY_KEY")), Fernet(env.get("OLD_KEY"))


def raw(model, field, pk, using="default"):
    """The stored value of model.field in row pk (of database using)."""
    connection = connections[using]
    qn = connection.ops.quote_name
    column = model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s FROM %s WHERE %s = %%s" % (qn(column), qn(model._meta.db_table), qn(model._meta.pk.column)), [pk])
        return cursor.fetchone()[0]


def set_raw(model, field, pk, value, using="default"):
    """Stores value in model.field of row pk (of database using), bypassing
    the field."""
    connection = connections[using]
    qn = connection.ops.quote_name
    column = model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE %s SET %s = %%s WHERE %s = %%s" % (qn(model._meta.db_table), qn(column), qn(model._meta.pk.column)),
            [value, pk],
        )


class Counting:
    """The backend, counting RPCs: a call of a *_many method is one RPC per
    1000 items, as the client splits them."""

    def __init__(self, inner):
        self.inner = inner
        self.rpcs = Counter()

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if name.endswith("_many"):
                items = list(args[0])
                args = (items,) + args[1:]
                self.rpcs[name] += math.ceil(len(items) / BATCH)
            else:
                self.rpcs[name] += 1
            return attr(*args, **kwargs)

        return call


def counting():
    """A context manager whose value is the Counting backend in use."""
    counter = Counting(conf.fernet())
    patcher = mock.patch.object(conf._fernet, "get", return_value=counter)

    class Context:
        def __enter__(self):
            patcher.start()
            return counter

        def __exit__(self, *exc_info):
            patcher.stop()

    return Context()
