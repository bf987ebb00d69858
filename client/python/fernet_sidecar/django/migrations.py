"""Migration operations that re-encrypt a field's column in place, the way
manage.py fernet_reencrypt does:

    from fernet_sidecar.django.migrations import ReEncrypt, EncryptPlaintext

    class Migration(migrations.Migration):
        atomic = False          # each batch commits on its own
        dependencies = [("accounts", "0007_previous")]
        operations = [ReEncrypt("accounts", "Account", "totp_secret")]

Both are reversible as no-ops: the tokens they write read under the same
keys as before. Rows that do not decrypt are left as they are and logged
(counts and primary keys only); fernet_reencrypt --check lists them.
"""

import logging

from django.db import router
from django.db.migrations.operations.base import Operation

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
        alias = schema_editor.connection.alias
        if not router.allow_migrate_model(alias, model):
            return
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
