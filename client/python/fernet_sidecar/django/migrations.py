"""Migration operations that re-encrypt a field's column in place, the way
manage.py fernet_reencrypt does:

    from fernet_sidecar.django.migrations import ReEncrypt, EncryptPlaintext

    class Migration(migrations.Migration):
        atomic = False          # each batch commits on its own
        dependencies = [("accounts", "0007_previous")]
        operations = [ReEncrypt("accounts", "Account", "totp_secret")]

The Migration must say atomic = False where the database runs a migration
in one transaction (PostgreSQL, SQLite): there, every row rewritten would
stay locked until the migration ended and an interruption would commit
nothing, so the operations refuse to run inside it.

Both are reversible as no-ops: the tokens they write read under the same
keys as before. Rows that do not decrypt are left as they are and logged
(counts and primary keys only); fernet_reencrypt --check lists them.
"""

import logging

from django.db import router
from django.db.migrations.operations.base import Operation
from django.db.transaction import TransactionManagementError

from .._walk import DEFAULT_BATCH_SIZE
from ._reencrypt import walk_field

logger = logging.getLogger("fernet_sidecar.django")


class ReEncrypt(Operation):
    """Re-encrypts app_label.Model.field under the primary key."""

    reduces_to_sql = False
    reversible = True
    encrypt_plaintext = False

    def __init__(self, app_label, model_name, field_name, batch_size=DEFAULT_BATCH_SIZE):
        self.app_label = app_label
        self.model_name = model_name
        self.field_name = field_name
        self.batch_size = batch_size

    def deconstruct(self):
        kwargs = {}
        if self.batch_size != DEFAULT_BATCH_SIZE:
            kwargs["batch_size"] = self.batch_size
        return self.__class__.__qualname__, [self.app_label, self.model_name, self.field_name], kwargs

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(self.app_label, self.model_name)
        connection = schema_editor.connection
        if not router.allow_migrate_model(connection.alias, model):
            return
        # Where DDL cannot be rolled back (MySQL, MariaDB) Django runs no
        # migration in a transaction, and this check never fires.
        if connection.in_atomic_block and connection.features.can_rollback_ddl:
            raise TransactionManagementError(
                "%s commits each batch on its own, but this migration runs in one transaction on %s: "
                "every row it rewrote would stay locked until the migration ended, and an interruption "
                "would commit nothing. Set atomic = False on the Migration class." % (self.describe(), connection.vendor)
            )
        alias = connection.alias
        field = model._meta.get_field(self.field_name)
        report = walk_field(model, field, alias, batch_size=self.batch_size, encrypt_plaintext=self.encrypt_plaintext and bool(field.legacy_plaintext))
        if report.pending():
            logger.warning(
                "%s: %d row(s) left off the primary key (%s); see manage.py fernet_reencrypt --check",
                self.describe(),
                report.pending(),
                "; ".join("%s %s" % (label.strip(), value) for label, value in report.lines() if value),
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return "Re-encrypt %s.%s.%s under the primary key" % (self.app_label, self.model_name, self.field_name)


class EncryptPlaintext(ReEncrypt):
    """ReEncrypt, and also encrypts legacy plaintext values of the shape the
    field's legacy_plaintext option names."""

    encrypt_plaintext = True

    def describe(self):
        return "Encrypt legacy plaintext and re-encrypt %s.%s.%s" % (self.app_label, self.model_name, self.field_name)
