"""What the benchmarks share: their command line, and how a time reads in
their tables."""

import argparse
import statistics


def parser(doc, count):
    """The command line of the benchmark doc describes: the sidecar's
    --target, how many items (--count, 1,000 unless told) and --rounds (9
    unless told); the benchmark adds its own options."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--target", required=True, help="the sidecar: host:port or unix:///path")
    p.add_argument("--" + count, type=int, default=1000)
    p.add_argument("--rounds", type=int, default=9)
    return p


def ms(seconds, decimals=1):
    """The median of the times (seconds) in milliseconds, with their
    min-max."""
    low, mid, high = (t * 1e3 for t in (min(seconds), statistics.median(seconds), max(seconds)))
    return "%.*f ms (%.*f–%.*f)" % (decimals, mid, decimals, low, decimals, high)
