"""Reporting a re-encryption walk (fernet_sidecar._walk) to a Prometheus
Pushgateway, as `fernetctl reencrypt --pushgateway` does: the same metrics,
types and grouping labels (job, table, column), so that the dashboard's
rotation row and deploy/prometheus/rotation-alerts.yaml cover Django's
`manage.py fernet_reencrypt --pushgateway` and Flask's `flask fernet
reencrypt --pushgateway` too. docs/deployment.md lists the metrics.

It pushes when the walk starts, after a batch (at most every
PUSH_INTERVAL seconds) and when it ends, with POST
(prometheus_client.pushadd_to_gateway), which replaces only the metrics it
sends: fernet_rotation_last_success_timestamp_seconds stays from the last
run that succeeded until another one does. A push that fails never stops
the walk: it is reported once on stderr, and again only after a push has
worked.

Needs prometheus_client (Debian's python3-prometheus-client, or the
package's [pushgateway] extra).
"""

import sys
import time

RUNNING, COMPLETE, REMAINING, FAILED, INTERRUPTED = "running", "complete", "remaining", "failed", "interrupted"
STATES = (RUNNING, COMPLETE, REMAINING, FAILED, INTERRUPTED)

#: the least time, in seconds, between two progress pushes
PUSH_INTERVAL = 1.0
#: seconds a push may take
TIMEOUT = 5.0


def _prometheus_client():
    try:
        import prometheus_client
        from prometheus_client import core
    except ImportError:
        raise RuntimeError(
            "--pushgateway needs prometheus_client: install python3-prometheus-client (Debian, Ubuntu) "
            "or fernet-sidecar[pushgateway]"
        ) from None
    return prometheus_client, core


class Pushgateway:
    """The Pushgateway at url (http://host:9091), to which a command
    reports its walks as job. A push that fails is reported once through
    warn (default: a line on stderr), and again only after a push has
    worked.
    """

    def __init__(self, url: str, job: str, *, warn=None, clock=time.time):
        self._client, self._core = _prometheus_client()
        self.url, self.job = url, job
        self._warn = warn or (lambda line: print(line, file=sys.stderr))
        self._clock = clock
        self._failing = False

    def run(self, table: str, column: str) -> "Run":
        """The monitor of one walk of table.column: walk(monitor=...)."""
        return Run(self, table, column)

    def _push(self, registry, grouping_key):
        try:
            self._client.pushadd_to_gateway(self.url, self.job, registry, grouping_key=grouping_key, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - an unreachable gateway must not stop the walk
            if not self._failing:
                # Not the URL: it may hold a password.
                self._warn("%s: pushgateway (the run goes on): %s" % (self.job, exc))
            self._failing = True
        else:
            self._failing = False


class Run:
    """One walk's report, in the group job/table/column: walk() calls
    started, progressed and finished."""

    def __init__(self, gateway: Pushgateway, table: str, column: str):
        self._gateway = gateway
        self._clock = gateway._clock
        self.grouping_key = {"table": table, "column": column}
        self._last_push = None
        self.state = RUNNING
        self.to_scan = 0
        self.counts = _counts(None)
        self.progressed_at = None
        self.finished_at = None
        self._registry = gateway._client.CollectorRegistry()
        self._registry.register(_Collector(self, gateway._core))

    def started(self, to_scan: int):
        """The walk has begun, with to_scan rows to scan."""
        self.state, self.to_scan, self.progressed_at = RUNNING, to_scan, self._clock()
        self._push()

    def progressed(self, report):
        """After a batch: pushes unless the last push was less than
        PUSH_INTERVAL ago."""
        now = self._clock()
        self.counts, self.progressed_at = _counts(report), now
        if self._last_push is None or now - self._last_push >= PUSH_INTERVAL:
            self._push()

    def finished(self, report, error: BaseException = None):
        """How the walk ended: its report, and what it raised (None if it
        returned)."""
        if isinstance(error, KeyboardInterrupt):
            self.state = INTERRUPTED
        elif error is not None:
            self.state = FAILED
        elif report.pending():
            self.state = REMAINING
        else:
            self.state = COMPLETE
        self.counts = _counts(report)
        self.finished_at = self._clock()
        self._push()

    def _push(self):
        self._last_push = self._clock()
        self._gateway._push(self._registry, self.grouping_key)


def _counts(report):
    """The pushed figures of a walk's report, by metric name."""
    if report is None:
        return dict.fromkeys(_COUNTERS, 0)
    return {
        "fernet_rotation_rows_scanned": report.rows,
        "fernet_rotation_rows_reencrypted": report.written - report.plaintext_written,
        "fernet_rotation_rows_current": report.primary,
        "fernet_rotation_rows_undecryptable": sum(report.undecryptable.values()),
        "fernet_rotation_rows_plaintext_encrypted": report.plaintext_written,
        "fernet_rotation_conflicts": report.conflicts,
    }


_COUNTERS = {
    "fernet_rotation_rows_scanned": "Rows this run scanned.",
    "fernet_rotation_rows_reencrypted": "Rows this run re-encrypted under the primary key.",
    "fernet_rotation_rows_current": "Rows this run found already under the primary key.",
    "fernet_rotation_rows_undecryptable": "Rows this run could not decrypt with any loaded key, left as they are.",
    "fernet_rotation_rows_plaintext_encrypted": "Rows holding a legacy plaintext secret that this run encrypted.",
    "fernet_rotation_conflicts": "Writes of this run that found the row changed by the app, and were left for a rerun.",
}


class _Collector:
    """What each push sends: the run's state now."""

    def __init__(self, run, core):
        self._run = run
        self._core = core

    def collect(self):
        g, core = self._run, self._core
        yield core.GaugeMetricFamily(
            "fernet_rotation_rows_to_scan", "Rows this run had to scan when it started.", value=g.to_scan
        )
        # Counters without a created time: only the _total sample, as
        # fernetctl pushes them.
        for name, doc in _COUNTERS.items():
            yield core.CounterMetricFamily(name, doc, value=g.counts[name])
        state = core.GaugeMetricFamily(
            "fernet_rotation_state",
            "1 for the state of the last run (running, complete, remaining, failed, interrupted), 0 for the others.",
            labels=["state"],
        )
        for s in STATES:
            state.add_metric([s], 1 if s == g.state else 0)
        yield state
        if g.progressed_at is not None:  # None: it failed before it started
            yield core.GaugeMetricFamily(
                "fernet_rotation_last_progress_timestamp_seconds",
                "When the run started or last committed a batch, in Unix seconds.",
                value=g.progressed_at,
            )
        if g.finished_at is not None:
            yield core.GaugeMetricFamily(
                "fernet_rotation_last_completion_timestamp_seconds",
                "When the last run ended, however it ended, in Unix seconds.",
                value=g.finished_at,
            )
            if g.state == COMPLETE:
                yield core.GaugeMetricFamily(
                    "fernet_rotation_last_success_timestamp_seconds",
                    "When a run last ended with every row under the primary key, in Unix seconds.",
                    value=g.finished_at,
                )
