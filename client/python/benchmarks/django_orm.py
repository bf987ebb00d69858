"""Django ORM benchmark: 1,000 rows with one encrypted field, read and
bulk-created, through fernet_sidecar.django against the same model with a
field that calls cryptography.fernet in process, in one run. Prints a
markdown table (docs/performance.md, "Django").

    go build -o /tmp/fernet-sidecar ./cmd/fernet-sidecar
    /tmp/fernet-sidecar --dev --dev-key-file /tmp/bench.key --addr unix:///tmp/bench.sock --metrics-addr "" &
    cd client/python && /usr/bin/python3 benchmarks/django_orm.py --target unix:///tmp/bench.sock

SQLite in memory, Debian's Django. Each round times every case once, in
turn; each figure is the median of the rounds, and each ratio is taken
within a round, then its median.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench  # noqa: E402
import django  # noqa: E402
from django.conf import settings  # noqa: E402


def main():
    args = bench.parser(__doc__, "rows").parse_args()

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["fernet_sidecar.django"],
        FERNET_SIDECAR={"TARGET": args.target, "TIMEOUT": 30.0},
        USE_TZ=True,
    )
    django.setup()

    from cryptography.fernet import Fernet
    from django.db import connection, models

    from fernet_sidecar import SidecarFernet
    from fernet_sidecar.django.fields import EncryptedTextField

    def by_hand(fernet):
        """The field apps write by hand: a call of fernet per value, so one
        RPC per value with the sidecar (the field this package replaces)."""

        class ByHandTextField(models.TextField):
            def get_prep_value(self, value):
                return fernet.encrypt(value.encode()).decode()

            def from_db_value(self, value, expression, connection):
                return fernet.decrypt(value).decode()

        return ByHandTextField

    class Meta:
        app_label = "bench"

    def model(name, field):
        return type(name, (models.Model,), {"body": field, "__module__": __name__, "Meta": Meta})

    cases = {
        "fernet_sidecar.django": model("SidecarNote", EncryptedTextField()),
        "cryptography.fernet in process": model("InProcessNote", by_hand(Fernet(Fernet.generate_key()))()),
        "one RPC per value (the old example)": model("PerValueNote", by_hand(SidecarFernet(args.target, timeout=30.0))()),
    }
    with connection.schema_editor() as editor:
        for m in cases.values():
            editor.create_model(m)

    bodies = ["JBSWY3DPEHPK3PXP%05d" % i for i in range(args.rows)]
    times = {(name, op): [] for name in cases for op in ("read", "bulk_create")}
    for _ in range(args.rounds):
        for name, m in cases.items():
            m.objects.all().delete()
            start = time.perf_counter()
            m.objects.bulk_create([m(body=b) for b in bodies])
            times[name, "bulk_create"].append(time.perf_counter() - start)
            start = time.perf_counter()
            read = [n.body for n in m.objects.all()]
            times[name, "read"].append(time.perf_counter() - start)
            assert sorted(read) == bodies, name

    base = "cryptography.fernet in process"
    print("| %d rows, one encrypted field (SQLite in memory) | read | read vs in process | bulk_create | bulk_create vs in process |" % args.rows)
    print("|---|---|---|---|---|")
    for name in cases:
        row = ["%s" % name]
        for op in ("read", "bulk_create"):
            ratios = [a / b for a, b in zip(times[name, op], times[base, op])]
            row.append(bench.ms(times[name, op]))
            row.append("%.2f×" % statistics.median(ratios))
        print("| " + " | ".join(row) + " |")
    print()
    print("%d rounds; Django %s; Python %s" % (args.rounds, django.get_version(), sys.version.split()[0]))


if __name__ == "__main__":
    main()
