"""SQLAlchemy benchmark: 1,000 rows with one encrypted column, inserted
(one session, one commit) and read (select, .scalars().all()), through
fernet_sidecar.sqlalchemy's EncryptedString against the same model with
the TypeDecorator apps write by hand around cryptography.fernet in
process, in one run. Prints a markdown table (docs/performance.md,
"SQLAlchemy").

    go build -o /tmp/fernet-sidecar ./cmd/fernet-sidecar
    /tmp/fernet-sidecar --dev --dev-key-file /tmp/bench.key --addr unix:///tmp/bench.sock --metrics-addr "" &
    cd client/python && /usr/bin/python3 benchmarks/sqlalchemy_rows.py --target unix:///tmp/bench.sock [--url postgresql+psycopg2://...]

SQLite in memory unless --url says otherwise; Debian's SQLAlchemy 1.4.
Each round times every case once, in turn, and empties the tables; each
figure is the median of the rounds, and each ratio is taken within a
round, then its median.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import Column, Integer, String, create_engine, delete, select  # noqa: E402
from sqlalchemy.orm import Session, declarative_base  # noqa: E402
from sqlalchemy.types import TypeDecorator  # noqa: E402

from fernet_sidecar import SidecarFernet  # noqa: E402
from fernet_sidecar.sqlalchemy import EncryptedString  # noqa: E402


def main():
    cli = bench.parser(__doc__, "rows")
    cli.add_argument("--url", default="sqlite://", help="SQLAlchemy database URL")
    args = cli.parse_args()

    sidecar = SidecarFernet(args.target, timeout=30.0)

    def by_hand(fernet):
        """The TypeDecorator apps write by hand: a call of fernet per value,
        so one RPC per value with the sidecar."""

        class ByHand(TypeDecorator):
            impl = String
            cache_ok = True

            def process_bind_param(self, value, dialect):
                return None if value is None else fernet.encrypt(value.encode()).decode()

            def process_result_value(self, value, dialect):
                return None if value is None else fernet.decrypt(value).decode()

        return ByHand

    Base = declarative_base()
    cases = {}
    for name, coltype in [
        ("fernet_sidecar.sqlalchemy", EncryptedString(200, fernet=sidecar)),
        ("cryptography.fernet in process", by_hand(Fernet(Fernet.generate_key()))(200)),
        ("one RPC per value", by_hand(sidecar)(200)),
    ]:
        table = "bench_" + "".join(c if c.isalnum() else "_" for c in name)
        cases[name] = type(table, (Base,), {"__tablename__": table, "id": Column(Integer, primary_key=True), "secret": Column(coltype)})

    engine = create_engine(args.url, future=True)
    Base.metadata.create_all(engine)
    secrets = ["JBSWY3DPEHPK3PXP%016d" % i for i in range(args.rows)]

    def round_of(model):
        start = time.perf_counter()
        with Session(engine) as session:
            session.add_all([model(secret=s) for s in secrets])
            session.commit()
        inserted = time.perf_counter()
        with Session(engine) as session:
            got = [d.secret for d in session.execute(select(model)).scalars().all()]
        read = time.perf_counter()
        if sorted(got) != secrets:
            sys.exit("%s: wrong secrets read" % model.__name__)
        with Session(engine) as session:
            session.execute(delete(model))
            session.commit()
        return read - inserted, inserted - start

    for model in cases.values():  # warm up
        round_of(model)
    times = {name: {"read": [], "insert": []} for name in cases}
    ratios = {name: {"read": [], "insert": []} for name in cases}
    for _ in range(args.rounds):
        this = {name: round_of(model) for name, model in cases.items()}
        base = this["cryptography.fernet in process"]
        for name, (read, insert) in this.items():
            times[name]["read"].append(read)
            times[name]["insert"].append(insert)
            ratios[name]["read"].append(read / base[0])
            ratios[name]["insert"].append(insert / base[1])
    Base.metadata.drop_all(engine)
    sidecar.close()

    print("| %d rows, one encrypted column (%s) | read | read vs in process | insert | insert vs in process |" % (args.rows, engine.dialect.name))
    print("|---|---|---|---|---|")
    for name in cases:
        t, r = times[name], ratios[name]
        print("| %s | %s | %.2f× | %s | %.2f× |" % (name, bench.ms(t["read"]), statistics.median(r["read"]), bench.ms(t["insert"]), statistics.median(r["insert"])))


if __name__ == "__main__":
    main()
