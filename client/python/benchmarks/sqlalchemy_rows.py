"""1,000 rows inserted and read with SQLAlchemy: EncryptedString through
the sidecar, against the TypeDecorator apps write by hand around
cryptography.fernet in process (one Fernet call per value).

    go build -o /tmp/fernet-sidecar ./cmd/fernet-sidecar
    /usr/bin/python3 client/python/benchmarks/sqlalchemy_rows.py /tmp/fernet-sidecar [rounds] [database URL]

The database defaults to SQLite in memory. Each round inserts 1,000 rows
(one session, one commit) into each model's table, then reads them all back
in a new session (select, .scalars().all(), every secret touched); the table
shows the median round, rows emptied between rounds.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cryptography.fernet import Fernet, MultiFernet  # noqa: E402
from sqlalchemy import Column, Integer, String, create_engine, delete, select  # noqa: E402
from sqlalchemy.orm import Session, declarative_base  # noqa: E402
from sqlalchemy.types import TypeDecorator  # noqa: E402

from fernet_sidecar import SidecarFernet  # noqa: E402
from fernet_sidecar.sqlalchemy import EncryptedString  # noqa: E402

from _sidecar import sidecar, table  # noqa: E402

ROWS = 1000
Base = declarative_base()
in_process = None  # the MultiFernet of the hand-written type


class HandWritten(TypeDecorator):
    """The usual hand-written column type: one Fernet call per value."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else in_process.encrypt(value.encode()).decode()

    def process_result_value(self, value, dialect):
        return None if value is None else in_process.decrypt(value.encode()).decode()


class InProcessDevice(Base):
    __tablename__ = "bench_in_process_device"
    id = Column(Integer, primary_key=True)
    secret = Column(HandWritten(200))


class SidecarDevice(Base):
    __tablename__ = "bench_sidecar_device"
    id = Column(Integer, primary_key=True)
    secret = Column(EncryptedString(200))


def insert(engine, model, secrets):
    with Session(engine) as session:
        session.add_all([model(secret=s) for s in secrets])
        session.commit()


def read(engine, model):
    with Session(engine) as session:
        return [d.secret for d in session.execute(select(model)).scalars().all()]


def empty(engine, model):
    with Session(engine) as session:
        session.execute(delete(model))
        session.commit()


def main():
    global in_process
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    url = sys.argv[3] if len(sys.argv) > 3 else "sqlite://"
    engine = create_engine(url, future=True)
    Base.metadata.create_all(engine)
    secrets = ["JBSWY3DPEHPK3PXP%016d" % i for i in range(ROWS)]
    with sidecar(binary) as (target, key):
        in_process = MultiFernet([Fernet(key)])
        client = SidecarFernet(target)
        SidecarDevice.secret.type.fernet = client
        times = {(m, op): [] for m in (InProcessDevice, SidecarDevice) for op in ("insert", "read")}
        for i in range(rounds + 1):  # the first round warms up
            for model in (InProcessDevice, SidecarDevice):
                start = time.perf_counter()
                insert(engine, model, secrets)
                inserted = time.perf_counter() - start
                start = time.perf_counter()
                got = read(engine, model)
                took = time.perf_counter() - start
                if sorted(got) != secrets:
                    raise SystemExit("%s: wrong secrets read" % model.__name__)
                empty(engine, model)
                if i:
                    times[model, "insert"].append(inserted)
                    times[model, "read"].append(took)
        client.close()
    Base.metadata.drop_all(engine)
    rows = []
    for op in ("insert", "read"):
        base = statistics.median(times[InProcessDevice, op])
        side = statistics.median(times[SidecarDevice, op])
        rows.append([op, "%.1f" % (base * 1e3), "%.1f" % (side * 1e3), "%.2fx" % (side / base)])
    table(
        "1,000 rows, %s, median of %d rounds" % (engine.dialect.name, rounds),
        ["", "hand-written TypeDecorator, cryptography in process (ms)", "EncryptedString, sidecar (ms)", "sidecar / in process"],
        rows,
    )


if __name__ == "__main__":
    main()
