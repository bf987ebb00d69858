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
        "or a field was not walked (its writes go to another database than --database, or to one "
        "the routers do not migrate it in)."
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
            help="walk only the fields whose writes go to this database alias (default: each field in the database its writes go to)",
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
        database = options["database"]
        if database is not None and database not in connections.databases:
            raise CommandError("no database alias %r in DATABASES" % database)
        if options["pushgateway"] and (options["check"] or options["dry_run"]):
            raise CommandError("--pushgateway reports rotations; --dry-run and --check do not rotate")
        try:
            fields = encrypted_fields(options["fields"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        if not fields:
            self.stdout.write("no encrypted fields")
            return
        walks, not_walked = self.plan(fields, database)
        gateway = None
        if options["pushgateway"]:
            groups = {}
            for model, field, alias, name, _ in walks:
                where = "%s in %s" % (name, alias)
                other = groups.setdefault((model._meta.db_table, field.column), where)
                if other != where:
                    raise CommandError(
                        "--pushgateway groups by table and column, and %s and %s are both %s.%s: run them one at a time"
                        % (other, where, model._meta.db_table, field.column)
                    )
            try:
                gateway = _pushgateway.Pushgateway(options["pushgateway"], PUSHGATEWAY_JOB, warn=self.stderr.write)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
        try:
            status = conf.fernet().status()
        except SidecarError as exc:
            raise CommandError("the sidecar is not reachable (%s)" % conf.failure(exc)) from None
        self.stdout.write("primary key %s, decrypt-only %s" % (status.primary_key_id, ", ".join(status.decrypt_only_key_ids) or "none"))
        for line in not_walked.values():
            self.stdout.write(self.style.WARNING(line))
        tty = self.stdout.isatty()
        several = len(connections.databases) > 1
        pending = 0
        for model, field, alias, name, skipped in walks:
            for other in skipped:
                self.stdout.write("%s: not walked in %s: its writes go to %s, and a replica follows them by replication" % (name, other, alias))
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

    def plan(self, fields, database):
        """Where each field is walked: ([(model, field, alias, name, the
        other aliases its table is in)], {name: why it is not walked}). A
        field is walked once, in the database its model's writes go to
        (router.db_for_write: default without routers, the primary under a
        primary/replica router), never in the other aliases the routers
        migrate it in: a replica follows the primary by replication, and a
        write to it would differ from the primary's or break replication."""
        walks, not_walked = [], {}
        for model, field in fields:
            name = "%s.%s" % (model._meta.label, field.name)
            home = router.db_for_write(model)
            # As migrate does: a model's table is where the routers allow it.
            migrated = [alias for alias in connections.databases if router.allow_migrate_model(alias, model)]
            # Not walked is not done: its rows may well be under an old key.
            if not migrated:
                not_walked[name] = "%s: not walked, the database routers allow it in no database" % name
            elif home not in migrated:
                not_walked[name] = "%s: not walked, the database routers send its writes to %s (db_for_write) but migrate it in %s only (allow_migrate)" % (
                    name,
                    home,
                    ", ".join(migrated),
                )
            elif database is not None and home != database:
                not_walked[name] = "%s: not walked, its writes go to %s, not %s: run with --database %s" % (name, home, database, home)
            else:
                walks.append((model, field, home, name, [alias for alias in migrated if alias != home]))
        return walks, not_walked

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
