"""1,000 concurrent decrypt calls: the asyncio client from one event loop,
against the sync client from 1,000 threads and from a ThreadPoolExecutor
of 32. Prints a markdown table (docs/performance.md, "asyncio").

    go build -o /tmp/fernet-sidecar ./cmd/fernet-sidecar
    /tmp/fernet-sidecar --dev --dev-key-file /tmp/bench.key --addr unix:///tmp/bench.sock --metrics-addr "" &
    cd client/python && /usr/bin/python3 benchmarks/concurrency.py --target unix:///tmp/bench.sock

Each way makes the same 1,000 Decrypt RPCs (one per token, no batching) on
one channel. Each round times every way once, in turn; each figure is the
median of the rounds, with the min-max, and each ratio is taken within a
round, then its median.
"""

import asyncio
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench  # noqa: E402
from fernet_sidecar import SidecarFernet  # noqa: E402
from fernet_sidecar.aio import AsyncSidecarFernet  # noqa: E402


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


def main():
    args = bench.parser(__doc__, "calls").parse_args()

    sync = SidecarFernet(args.target, timeout=30.0)
    loop = asyncio.new_event_loop()
    aio = AsyncSidecarFernet(args.target, timeout=30.0)
    pool = ThreadPoolExecutor(32)
    plaintexts = [b"JBSWY3DPEHPK3PXP%06d" % i for i in range(args.calls)]
    tokens = sync.encrypt_many(plaintexts)
    ways = {
        "asyncio client, one event loop, a task per call": lambda: one_loop(aio, loop, tokens),
        "sync client, a thread per call": lambda: threads(sync, tokens),
        "sync client, ThreadPoolExecutor(32)": lambda: list(pool.map(sync.decrypt, tokens)),
    }
    for name, run in ways.items():  # warm up, and check the answers
        if run() != plaintexts:
            sys.exit("%s: wrong plaintexts" % name)
    times = {name: [] for name in ways}
    ratios = {name: [] for name in ways}
    for _ in range(args.rounds):
        this = {}
        for name, run in ways.items():
            start = time.perf_counter()
            run()
            this[name] = time.perf_counter() - start
        for name, t in this.items():
            times[name].append(t)
            ratios[name].append(t / this["sync client, ThreadPoolExecutor(32)"])
    loop.run_until_complete(aio.close())
    loop.close()
    pool.shutdown()
    sync.close()

    print("| %d concurrent decrypt calls | time | calls/s | time vs ThreadPoolExecutor(32) |" % args.calls)
    print("|---|---|---|---|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print("| %s | %s | %.0f | %.2f× |" % (name, bench.ms(ts, decimals=0), args.calls / t, statistics.median(ratios[name])))


if __name__ == "__main__":
    main()
