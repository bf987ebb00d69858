"""fernet_sidecar._pushgateway: when a walk pushes, what the last push
says, and what an unreachable Pushgateway does, against a recording HTTP
server (client/pushgateway_test.go runs the commands against Debian's real
Pushgateway)."""

import http.server
import itertools
import socket
import sqlite3
import sys
import tempfile
import threading
import unittest
from unittest import mock

from cryptography.fernet import Fernet

from fernet_sidecar import InProcessFernet, _pushgateway
from fernet_sidecar._walk import Database, walk

from . import env



class Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request (method, path, body) in server.requests."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.server.requests.append((self.command, self.path, body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


class PushgatewayTest(unittest.TestCase):
    def setUp(self):
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            env.missing("prometheus_client (Debian package python3-prometheus-client)")
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
        self.server.requests = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = "http://127.0.0.1:%d" % self.server.server_port

        new, old = Fernet.generate_key(), Fernet.generate_key()
        self.fernet = InProcessFernet([new, old])
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.conn = sqlite3.connect(tmp.name + "/app.sqlite3")
        self.addCleanup(self.conn.close)
        self.conn.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, token TEXT)")
        self.conn.executemany("INSERT INTO secrets (token) VALUES (?)", [(Fernet(old).encrypt(b"x%d" % i).decode(),) for i in range(7)])
        self.conn.commit()
        self.db = Database(self.conn, paramstyle="qmark", quote=lambda name: '"%s"' % name)
        self.warnings = []

    def walk(self, clock, url=None, **kwargs):
        gateway = _pushgateway.Pushgateway(url or self.url, "test", warn=self.warnings.append, clock=clock)
        return walk(self.db, self.fernet, "secrets", "token", "id", batch_size=3, monitor=gateway.run("secrets", "token"), **kwargs)

    def test_pushes_at_start_and_end_and_batches_at_most_once_a_second(self):
        # 7 rows in batches of 3: a start, 3 batches and an end. The first
        # run re-encrypts them, the second finds them current.
        runs = []
        for step, pushes in ((0.0, 2), (2.0, 5)):
            with self.subTest(seconds_between_calls=step):
                self.server.requests.clear()
                ticks = itertools.count()
                self.walk(lambda: 1_700_000_000 + step * next(ticks))
                self.assertEqual(len(self.server.requests), pushes)
                for method, path, _ in self.server.requests:
                    self.assertEqual((method, path), ("POST", "/metrics/job/test/column/token/table/secrets"))
                runs.append([body for _, _, body in self.server.requests])
        first, last = runs[0][0], runs[0][-1]
        self.assertIn('fernet_rotation_state{state="running"} 1.0', first)
        self.assertIn("fernet_rotation_rows_to_scan 7.0", first)
        self.assertIn("fernet_rotation_rows_scanned_total 0.0", first)
        self.assertNotIn("fernet_rotation_last_success_timestamp_seconds", first)
        self.assertIn('fernet_rotation_state{state="running"} 0.0', last)
        self.assertIn('fernet_rotation_state{state="complete"} 1.0', last)
        self.assertIn("fernet_rotation_rows_scanned_total 7.0", last)
        self.assertIn("fernet_rotation_rows_reencrypted_total 7.0", last)
        self.assertIn("fernet_rotation_last_success_timestamp_seconds", last)
        self.assertNotIn("_created", last)  # counters as fernetctl pushes them: _total only
        self.assertIn("fernet_rotation_rows_current_total 7.0", runs[1][-1])
        self.assertIn("fernet_rotation_rows_reencrypted_total 0.0", runs[1][-1])
        self.assertIn("fernet_rotation_rows_scanned_total 3.0", runs[1][1])  # after the first batch
        self.assertEqual(self.warnings, [])

    def test_interrupted_run(self):
        def interrupt(report):
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            self.walk(lambda: 1_700_000_000, progress=interrupt)
        last = self.server.requests[-1][2]
        self.assertIn('fernet_rotation_state{state="interrupted"} 1.0', last)
        self.assertIn("fernet_rotation_rows_scanned_total 3.0", last)
        self.assertIn("fernet_rotation_last_completion_timestamp_seconds", last)
        self.assertNotIn("fernet_rotation_last_success_timestamp_seconds", last)

    def test_unreachable_pushgateway_warns_once_and_the_walk_goes_on(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = "http://127.0.0.1:%d" % s.getsockname()[1]
        ticks = itertools.count()
        report = self.walk(lambda: 1_700_000_000 + 2 * next(ticks), url=closed)  # 5 pushes, all failing
        self.assertEqual(report.written, 7)
        self.assertEqual(len(self.warnings), 1, self.warnings)
        self.assertIn("pushgateway (the run goes on)", self.warnings[0])

    def test_without_prometheus_client_says_what_to_install(self):
        with mock.patch.dict(sys.modules, {"prometheus_client": None}):
            with self.assertRaisesRegex(RuntimeError, "python3-prometheus-client .*fernet-sidecar\\[pushgateway\\]"):
                _pushgateway.Pushgateway(self.url, "test")
