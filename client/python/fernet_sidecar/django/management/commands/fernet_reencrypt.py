from django.core.management.base import BaseCommand, CommandError
from django.db import connections, router

from .... import _pushgateway
from ...._errors import SidecarError
from ...._legacy import LEGACY_SHAPES
from ...._walk import DEFAULT_BATCH_SIZE
from ... import conf
from ..._reencrypt import encrypted_fields, walk_field


#: the job label of the command's pushes to a Pushgateway
PUSHGATEWAY_JOB = "django"


class Command(BaseCommand):
    help = (
        "Re-encrypts encrypted fields in place under the sidecar's primary key, by primary key "
        "in batches; a row the app changes meanwhile keeps the app's value. Safe to interrupt "
        "and rerun. Exits 0 when every row is under the primary key (or NULL), 3 when some are not "
        "or a field was not walked (the database routers keep it out of --database)."
    )

    def add_arguments(self, parser):
        parser.add_argument("fields", nargs="*", metavar="app_label[.Model[.field]]", help="default: every encrypted field of every installed model")
        parser.add_argument("--check", action="store_true", help="count rows by key and write nothing")
        parser.add_argument("--dry-run", action="store_true", help="count what would be written, and write nothing")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per batch (default %(default)s)")
        parser.add_argument(
            "--encrypt-plaintext",
            action="store_true",
            help="also encrypt legacy plaintext, in fields with legacy_plaintext (or all, with --legacy-plaintext)",
        )
        parser.add_argument("--legacy-plaintext", choices=LEGACY_SHAPES, help="the legacy shape of fields that do not set one")
        parser.add_argument(
            "--database",
            help="walk only this database alias (default: each field in every database the routers allow its model in)",
        )
        parser.add_argument(
            "--pushgateway",
            metavar="URL",
            help="Prometheus Pushgateway (http://host:9091): push each field's progress and outcome there, as job %s grouped by table and column"
            % PUSHGATEWAY_JOB,
        )

    def handle(self, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["database"] is not None and options["database"] not in connections.databases:
            raise CommandError("no database alias %r in DATABASES" % options["database"])
        gateway = None
        if options["pushgateway"]:
            if options["check"] or options["dry_run"]:
                raise CommandError("--pushgateway reports rotations; --dry-run and --check do not rotate")
            if options["database"] is None and len(connections.databases) > 1:
                # Its groups are table and column: two databases' runs of one table would overwrite each other.
                raise CommandError("--pushgateway groups by table and column: with several databases, give --database")
            try:
                gateway = _pushgateway.Pushgateway(options["pushgateway"], PUSHGATEWAY_JOB, warn=self.stderr.write)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
        try:
            fields = encrypted_fields(options["fields"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        if not fields:
            self.stdout.write("no encrypted fields")
            return
        try:
            status = conf.fernet().status()
        except SidecarError as exc:
            raise CommandError("the sidecar is not reachable (%s)" % conf.failure(exc)) from None
        self.stdout.write("primary key %s, decrypt-only %s" % (status.primary_key_id, ", ".join(status.decrypt_only_key_ids) or "none"))
        tty = self.stdout.isatty()
        several = len(connections.databases) > 1
        aliases = [options["database"]] if options["database"] else list(connections.databases)
        pending = 0
        not_walked = []
        for model, field in fields:
            name = "%s.%s" % (model._meta.label, field.name)
            # As migrate does: a model's table is in the databases the routers allow it in.
            allowed = [alias for alias in aliases if router.allow_migrate_model(alias, model)]
            if not allowed:
                # Not walked is not done: its rows may well be under an old key.
                elsewhere = [alias for alias in connections.databases if router.allow_migrate_model(alias, model)]
                if not elsewhere:
                    why = "the database routers allow it in no database"
                else:
                    why = "the database routers do not put it in %s: run with --database %s" % (options["database"], " / --database ".join(elsewhere))
                self.stdout.write(self.style.WARNING("%s: not walked, %s" % (name, why)))
                not_walked.append(name)
                continue
            for alias in allowed:
                pending += self.walk(model, field, alias, name + (" in %s" % alias if several else ""), tty, gateway, options)
        failures = []
        if pending:
            what = "would be left" if options["check"] or options["dry_run"] else "are"
            failures.append("%d row(s) %s off the primary key" % (pending, what))
        if not_walked:
            failures.append("%d field(s) not walked: %s" % (len(not_walked), ", ".join(not_walked)))
        if failures:
            raise CommandError("; ".join(failures), returncode=3)
        self.stdout.write(self.style.SUCCESS("every row is under the primary key"))

    def walk(self, model, field, alias, name, tty, gateway, options):
        """Walks field in database alias and prints its summary; returns
        the rows it leaves off the primary key."""
        legacy = field.legacy_plaintext or options["legacy_plaintext"]

        def progress(report):
            line = "%s: %d rows, %d re-encrypted, %d written, last pk %s" % (name, report.rows, report.rotated, report.written, report.last_pk)
            if tty:
                self.stdout.write("\r" + line, ending="")
                self.stdout.flush()
            else:
                self.stdout.write(line)

        report = walk_field(
            model,
            field,
            alias,
            batch_size=options["batch_size"],
            check=options["check"],
            dry_run=options["dry_run"],
            legacy_plaintext=legacy,
            encrypt_plaintext=options["encrypt_plaintext"] and legacy is not None,
            progress=progress,
            monitor=gateway and gateway.run(model._meta.db_table, field.column),
        )
        if tty and report.rows:
            self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING("%s (%s.%s)" % (name, report.table, report.column)))
        for label, value in report.lines():
            self.stdout.write("  %-45s %s" % (label, value))
        return report.pending()
