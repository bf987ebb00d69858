"""1,000 concurrent decrypts: the asyncio client from one event loop, against
the sync client from 1,000 threads and from a ThreadPoolExecutor of 32.

    go build -o /tmp/fernet-sidecar ./cmd/fernet-sidecar
    /usr/bin/python3 client/python/benchmarks/concurrency.py /tmp/fernet-sidecar [rounds]

Each way runs the same 1,000 decrypt RPCs (one per token, no batching) on
one channel, rounds times, alternating; the table shows the median round.
"""

import asyncio
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fernet_sidecar import SidecarFernet  # noqa: E402
from fernet_sidecar.aio import AsyncSidecarFernet  # noqa: E402

from _sidecar import sidecar, table  # noqa: E402

CALLS = 1000


def one_loop(f, loop, tokens):
    async def all_at_once():
        return await asyncio.gather(*(f.decrypt(t) for t in tokens))

    return loop.run_until_complete(all_at_once())


def threads(f, tokens):
    out = [None] * len(tokens)

    def work(i):
        out[i] = f.decrypt(tokens[i])

    started = [threading.Thread(target=work, args=(i,)) for i in range(len(tokens))]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return out


def pool(f, executor, tokens):
    return list(executor.map(f.decrypt, tokens))


def main():
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    with sidecar(binary) as (target, _):
        sync = SidecarFernet(target)
        loop = asyncio.new_event_loop()
        aio = AsyncSidecarFernet(target)
        executor = ThreadPoolExecutor(32)
        plaintexts = [b"JBSWY3DPEHPK3PXP%04d" % i for i in range(CALLS)]
        tokens = sync.encrypt_many(plaintexts)
        ways = {
            "asyncio client, one event loop, %d tasks" % CALLS: lambda: one_loop(aio, loop, tokens),
            "sync client, %d threads" % CALLS: lambda: threads(sync, tokens),
            "sync client, ThreadPoolExecutor(32)": lambda: pool(sync, executor, tokens),
        }
        times = {name: [] for name in ways}
        for name, run in ways.items():  # warm up, and check the answers
            if run() != plaintexts:
                raise SystemExit("%s: wrong plaintexts" % name)
        for _ in range(rounds):
            for name, run in ways.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        loop.run_until_complete(aio.close())
        loop.close()
        executor.shutdown()
        sync.close()
    base = statistics.median(times["sync client, ThreadPoolExecutor(32)"])
    rows = []
    for name, ts in times.items():
        t = statistics.median(ts)
        rows.append([name, "%.0f" % (t * 1e3), "%.0f" % (CALLS / t), "%.2fx" % (t / base)])
    table(
        "%d concurrent decrypt calls, median of %d rounds (Python %s)" % (CALLS, rounds, sys.version.split()[0]),
        ["way", "ms for 1,000", "calls/s", "time vs pool of 32"],
        rows,
    )


if __name__ == "__main__":
    main()
