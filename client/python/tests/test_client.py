"""SidecarFernet against the real sidecar, held to Python's own Fernet."""

import base64
import hashlib
import os
import pickle
import socket
import tempfile
import threading
import time
import unittest

import grpc
from cryptography.fernet import Fernet, MultiFernet
from cryptography.fernet import InvalidToken as CryptographyInvalidToken
from google.protobuf import descriptor_pool
from google.protobuf.message import DecodeError

import fernet_sidecar
from fernet_sidecar import InvalidToken, SidecarError, SidecarFernet, SidecarUnavailable

from . import env


def key_id(key):
    return hashlib.sha256(base64.urlsafe_b64decode(key)).hexdigest()[:16]


class Transport:
    """The tests, run once per transport by the subclasses below."""

    target_var = None
    Client = SidecarFernet  # test_aio runs these tests on the asyncio client

    @classmethod
    def setUpClass(cls):
        cls.target = env.get(cls.target_var)
        cls.primary_key = env.get("PRIMARY_KEY")
        cls.old_key = env.get("OLD_KEY")
        cls.max_plaintext = int(env.get("MAX_PLAINTEXT"))
        cls.max_batch_items = int(env.get("MAX_BATCH_ITEMS"))
        cls.primary = Fernet(cls.primary_key)
        cls.old = Fernet(cls.old_key)
        cls.python = MultiFernet([cls.primary, cls.old])  # what the sidecar holds
        cls.f = cls.Client(cls.target, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.f.close()

    def assertInvalidToken(self, call, reason, *args, **kwargs):
        with self.assertRaises(CryptographyInvalidToken) as caught:
            call(*args, **kwargs)
        err = caught.exception
        self.assertIsInstance(err, InvalidToken)
        self.assertEqual(err.reason, reason)
        self.assertTrue(err.message)
        self.assertIsInstance(err.__cause__, grpc.RpcError)
        self.assertEqual(err.__cause__.code(), grpc.StatusCode.INVALID_ARGUMENT)
        return err

    # -- compatibility with Python's Fernet --------------------------------

    def test_python_tokens_decrypt(self):
        for name, fernet, kid in [("primary", self.primary, key_id(self.primary_key)), ("old", self.old, key_id(self.old_key))]:
            with self.subTest(key=name):
                token = fernet.encrypt(b"JBSWY3DPEHPK3PXP")
                self.assertEqual(self.f.decrypt(token), b"JBSWY3DPEHPK3PXP")
                self.assertEqual(self.f.decrypt(token.decode()), b"JBSWY3DPEHPK3PXP")
                self.assertEqual(self.f.decrypt(token, ttl=60), b"JBSWY3DPEHPK3PXP")
                info = self.f.decrypt_info(token)
                self.assertEqual(info.key_id, kid)
                self.assertEqual(info.needs_reencrypt, name == "old")
                self.assertEqual(info.timestamp, fernet.extract_timestamp(token))

    def test_sidecar_tokens_decrypt_in_python(self):
        for data in [b"", b"x", b"JBSWY3DPEHPK3PXP", bytes(range(256)) * 3]:
            with self.subTest(size=len(data)):
                before = int(time.time())
                token = self.f.encrypt(data)
                self.assertIsInstance(token, bytes)
                self.assertEqual(self.primary.decrypt(token), data)
                self.assertEqual(self.python.decrypt(token, ttl=60), data)
                self.assertGreaterEqual(self.primary.extract_timestamp(token), before)

    def test_bad_tokens_raise_invalid_token_as_python_does(self):
        now = int(time.time())
        good = self.primary.encrypt(b"secret")
        stranger = Fernet(Fernet.generate_key())
        cases = [
            ("garbage", b"garbage", None, fernet_sidecar.MALFORMED),
            ("empty", b"", None, fernet_sidecar.MALFORMED),
            ("altered", good[:-6] + (b"AAAA==" if good[-6:] != b"AAAA==" else b"BBBB=="), None, fernet_sidecar.INVALID_SIGNATURE),
            ("unknown key", stranger.encrypt(b"secret"), None, fernet_sidecar.INVALID_SIGNATURE),
            ("expired", self.primary.encrypt_at_time(b"secret", now - 3600), 60, fernet_sidecar.EXPIRED),
            ("future", self.old.encrypt_at_time(b"secret", now + 3600), 60, fernet_sidecar.FUTURE_TIMESTAMP),
            ("zero ttl, a minute old", self.primary.encrypt_at_time(b"secret", now - 60), 0, fernet_sidecar.EXPIRED),
        ]
        for name, token, ttl, reason in cases:
            with self.subTest(name):
                with self.assertRaises(CryptographyInvalidToken, msg="Python's own verdict"):
                    self.python.decrypt(token, ttl=ttl)
                err = self.assertInvalidToken(self.f.decrypt, reason, token, ttl=ttl)
                if token:
                    self.assertNotIn(token.decode(), str(err))

    def test_token_too_large_is_invalid_token(self):
        self.assertInvalidToken(self.f.decrypt, fernet_sidecar.TOKEN_TOO_LARGE, b"gAAAAA" + b"A" * (8 * self.max_plaintext))

    def test_input_types_as_python(self):
        token = self.primary.encrypt(b"secret")
        with self.assertRaises(TypeError):
            self.f.encrypt("not bytes")
        with self.assertRaises(TypeError):
            self.primary.encrypt("not bytes")
        for bad in [None, 42, bytearray(token)]:
            with self.subTest(token=type(bad).__name__):
                with self.assertRaises(TypeError):
                    self.primary.decrypt(bad)
                with self.assertRaises(TypeError):
                    self.f.decrypt(bad)
        # A non-ASCII str is a ValueError in Python, and not an InvalidToken.
        non_ascii = token.decode()[:10] + "\u00e9" + token.decode()[10:]
        with self.assertRaises(ValueError) as python:
            self.primary.decrypt(non_ascii)
        self.assertNotIsInstance(python.exception, CryptographyInvalidToken)
        with self.assertRaises(ValueError) as ours:
            self.f.decrypt(non_ascii)
        self.assertNotIsInstance(ours.exception, CryptographyInvalidToken)
        # Python's decoder skips non-ASCII bytes, and so does the client.
        junk = token[:10] + b"\xff\x80" + token[10:]
        self.assertEqual(self.primary.decrypt(junk), b"secret")
        self.assertEqual(self.f.decrypt(junk), b"secret")
        # Whitespace and the standard alphabet, as Python.
        wrapped = b"\n".join(token[i : i + 20] for i in range(0, len(token), 20)).replace(b"-", b"+").replace(b"_", b"/")
        self.assertEqual(self.primary.decrypt(wrapped), b"secret")
        self.assertEqual(self.f.decrypt(wrapped), b"secret")

    def test_ttl_forms(self):
        now = int(time.time())
        token = self.primary.encrypt_at_time(b"secret", now - 100)
        for ttl, expired in [(1000, False), (50, True), (1000.5, False), (50.9, True), (2**70, False), (-(2**70), True), (float("inf"), False), (True, True)]:
            with self.subTest(ttl=ttl):
                if expired:
                    with self.assertRaises(CryptographyInvalidToken):
                        self.python.decrypt(token, ttl=ttl)
                    self.assertInvalidToken(self.f.decrypt, fernet_sidecar.EXPIRED, token, ttl=ttl)
                else:
                    self.assertEqual(self.python.decrypt(token, ttl=ttl), b"secret")
                    self.assertEqual(self.f.decrypt(token, ttl=ttl), b"secret")
        with self.assertRaises(TypeError):
            self.f.decrypt(token, ttl="60")

    def test_rotate_keeps_the_timestamp(self):
        old_token = self.old.encrypt_at_time(b"secret", 1_600_000_000)
        rotated = self.f.rotate(old_token)
        self.assertIsInstance(rotated, bytes)
        self.assertEqual(self.primary.decrypt(rotated), b"secret")
        self.assertEqual(self.primary.extract_timestamp(rotated), 1_600_000_000)
        # Python's rotate does the same.
        self.assertEqual(self.primary.extract_timestamp(self.python.rotate(old_token)), 1_600_000_000)
        # Already canonical under the primary: it comes back as it was.
        self.assertEqual(self.f.rotate(rotated), rotated)
        self.assertEqual(self.f.rotate(rotated.decode()), rotated)
        self.assertInvalidToken(self.f.rotate, fernet_sidecar.INVALID_SIGNATURE, Fernet(Fernet.generate_key()).encrypt(b"x"))

    def test_extract_timestamp(self):
        for fernet in (self.primary, self.old):
            token = fernet.encrypt_at_time(b"x", 1_234_567_890)
            self.assertEqual(self.f.extract_timestamp(token), 1_234_567_890)
            self.assertEqual(fernet.extract_timestamp(token), 1_234_567_890)
        # No time check, as in Python.
        ancient = self.primary.encrypt_at_time(b"x", 1)
        self.assertEqual(self.f.extract_timestamp(ancient), 1)
        self.assertInvalidToken(self.f.extract_timestamp, fernet_sidecar.INVALID_SIGNATURE, Fernet(Fernet.generate_key()).encrypt(b"x"))

    def test_status(self):
        status = self.f.status()
        self.assertEqual(status.primary_key_id, key_id(self.primary_key))
        self.assertEqual(status.decrypt_only_key_ids, [key_id(self.old_key)])
        self.assertTrue(status.version)

    # -- limits ------------------------------------------------------------

    def test_plaintext_too_large_is_not_invalid_token(self):
        with self.assertRaises(SidecarError) as caught:
            self.f.encrypt(b"x" * (self.max_plaintext + 1))
        self.assertNotIsInstance(caught.exception, CryptographyInvalidToken)
        self.assertEqual(caught.exception.reason, fernet_sidecar.PLAINTEXT_TOO_LARGE)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_batch_too_large(self):
        unsplit = self.Client(self.target, max_batch_items=0)
        try:
            with self.assertRaises(SidecarError) as caught:
                unsplit.encrypt_many([b"x"] * (self.max_batch_items + 1))
            self.assertEqual(caught.exception.reason, fernet_sidecar.BATCH_TOO_LARGE)
            self.assertNotIsInstance(caught.exception, CryptographyInvalidToken)
        finally:
            unsplit.close()
        # The default splits it into RPCs the sidecar takes.
        split = self.Client(self.target, max_batch_items=self.max_batch_items)
        with split:
            tokens = split.encrypt_many([b"%d" % i for i in range(3 * self.max_batch_items + 1)])
        self.assertEqual([self.primary.decrypt(t) for t in tokens], [b"%d" % i for i in range(3 * self.max_batch_items + 1)])

    # -- batch helpers -----------------------------------------------------

    def test_batches_in_order(self):
        f = self.Client(self.target, max_batch_items=3)  # several RPCs
        self.addCleanup(f.close)
        data = [b"item %d" % i for i in range(10)]
        tokens = f.encrypt_many(data)
        self.assertEqual([self.primary.decrypt(t) for t in tokens], data)
        self.assertEqual(f.decrypt_many(tokens, ttl=60), data)
        self.assertEqual(f.decrypt_many(t.decode() for t in tokens), data)
        self.assertEqual(f.encrypt_many([]), [])

        old_tokens = [self.old.encrypt_at_time(d, 1_600_000_000 + i) for i, d in enumerate(data)]
        rotated = f.rotate_many(old_tokens)
        for i, token in enumerate(rotated):
            self.assertEqual(self.primary.decrypt(token), data[i])
            self.assertEqual(self.primary.extract_timestamp(token), 1_600_000_000 + i)
        self.assertEqual(f.rotate_many(rotated), rotated)  # nothing left to change

    def test_batches_split_by_bytes(self):
        data = [b"%04d" % i for i in range(self.max_batch_items + 2)]  # over the sidecar's limit in one RPC
        f = self.Client(self.target, max_batch_items=0, max_batch_bytes=10)  # two items an RPC
        self.addCleanup(f.close)
        self.assertEqual([self.primary.decrypt(t) for t in f.encrypt_many(data)], data)
        big = b"x" * 11  # over max_batch_bytes: an RPC of its own
        self.assertEqual([self.primary.decrypt(t) for t in f.encrypt_many([b"a", big, b"b"])], [b"a", big, b"b"])

    def test_batch_item_errors(self):
        now = int(time.time())
        tokens = [
            self.primary.encrypt(b"zero"),
            b"not a token",
            self.old.encrypt(b"two"),
            self.primary.encrypt_at_time(b"three", now - 3600),
        ]
        results = self.f.decrypt_many(tokens, ttl=60, return_exceptions=True)
        self.assertEqual(results[0], b"zero")
        self.assertEqual(results[2], b"two")
        for i, reason in [(1, fernet_sidecar.MALFORMED), (3, fernet_sidecar.EXPIRED)]:
            self.assertIsInstance(results[i], CryptographyInvalidToken)
            self.assertEqual(results[i].reason, reason)
            self.assertEqual(results[i].index, i)
        with self.assertRaises(CryptographyInvalidToken) as caught:
            self.f.decrypt_many(tokens, ttl=60)
        self.assertEqual((caught.exception.reason, caught.exception.index), (fernet_sidecar.MALFORMED, 1))

        rotated = self.f.rotate_many(tokens, return_exceptions=True)
        self.assertEqual(self.primary.decrypt(rotated[2]), b"two")
        self.assertEqual(rotated[1].reason, fernet_sidecar.MALFORMED)
        self.assertEqual(self.primary.decrypt(rotated[3]), b"three")  # no TTL in rotate

        sealed = self.f.encrypt_many([b"a", b"x" * (self.max_plaintext + 1)], return_exceptions=True)
        self.assertEqual(self.primary.decrypt(sealed[0]), b"a")
        self.assertIsInstance(sealed[1], SidecarError)
        self.assertNotIsInstance(sealed[1], CryptographyInvalidToken)
        self.assertEqual(sealed[1].reason, fernet_sidecar.PLAINTEXT_TOO_LARGE)

    # -- the channel -------------------------------------------------------

    def test_one_channel_shared_by_threads(self):
        channel = self.f._channel
        errors = []

        def work():
            try:
                for _ in range(20):
                    self.assertEqual(self.f.decrypt(self.f.encrypt(b"t")), b"t")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertIs(self.f._channel, channel)

    def test_exceptions_pickle(self):
        for err in [InvalidToken("m", fernet_sidecar.EXPIRED), SidecarError("m", grpc.StatusCode.INTERNAL, "INTERNAL")]:
            again = pickle.loads(pickle.dumps(err))
            self.assertEqual((type(again), again.reason, str(again)), (type(err), err.reason, "m"))


class TCPTest(Transport, unittest.TestCase):
    target_var = "TCP_TARGET"


class UnixSocketTest(Transport, unittest.TestCase):
    target_var = "UNIX_TARGET"


class TLSTest(unittest.TestCase):
    """A sidecar that requires TLS and a client certificate."""

    Client = SidecarFernet

    @classmethod
    def setUpClass(cls):
        cls.target = env.get("TLS_TARGET")

        def read(name):
            with open(env.get(name), "rb") as f:
                return f.read()

        cls.ca, cls.cert, cls.key = read("TLS_CA"), read("TLS_CLIENT_CERT"), read("TLS_CLIENT_KEY")
        cls.primary = Fernet(env.get("PRIMARY_KEY"))

    def test_mtls(self):
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert)
        with self.Client(self.target, credentials=credentials, timeout=10) as f:
            token = f.encrypt(b"secret")
            self.assertEqual(self.primary.decrypt(token), b"secret")
            self.assertEqual(f.decrypt(self.primary.encrypt(b"back")), b"back")

    def test_refused_without_tls_or_client_certificate(self):
        for name, credentials in [("plaintext", None), ("no client certificate", grpc.ssl_channel_credentials(root_certificates=self.ca))]:
            with self.subTest(name), self.Client(self.target, credentials=credentials, timeout=10, max_attempts=1) as f:
                with self.assertRaises(SidecarUnavailable) as caught:
                    f.status()
                self.assertNotIsInstance(caught.exception, CryptographyInvalidToken)


class SidecarDownTest(unittest.TestCase):
    """With no sidecar, calls fail with SidecarUnavailable, never InvalidToken."""

    Client = SidecarFernet
    channel = staticmethod(grpc.insecure_channel)

    def targets(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = "127.0.0.1:%d" % s.getsockname()[1]
        return [closed_port, "unix://" + os.path.join(tempfile.mkdtemp(), "nobody.sock")]

    def test_down_is_not_invalid_token(self):
        token = Fernet(Fernet.generate_key()).encrypt(b"x")
        for target in self.targets():
            with self.subTest(target=target), self.Client(target, timeout=10) as f:
                calls = [
                    lambda: f.decrypt(token),
                    lambda: f.decrypt(b"garbage"),
                    lambda: f.encrypt(b"x"),
                    lambda: f.rotate(token),
                    lambda: f.extract_timestamp(token),
                    lambda: f.decrypt_many([token]),
                    lambda: f.status(),
                ]
                for call in calls:
                    started = time.monotonic()
                    with self.assertRaises(SidecarUnavailable) as caught:
                        call()
                    self.assertLess(time.monotonic() - started, 5, "fails fast, after the retries")
                    self.assertNotIsInstance(caught.exception, CryptographyInvalidToken)
                    self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
                    self.assertIsNone(caught.exception.reason)

    def test_timeout(self):
        # A server that accepts and never answers holds a call until the
        # timeout: no sooner, and at most 1 s later when the client's own
        # channel carries it in its service config (see _client.py).
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        self.addCleanup(hole.close)
        target = "127.0.0.1:%d" % hole.getsockname()[1]
        given = self.channel(target)
        self.addCleanup(given.close)
        for name, channel in [("the client's channel", None), ("a channel given to the client", given)]:
            with self.subTest(name), self.Client(target, timeout=0.5, channel=channel) as f:
                started = time.monotonic()
                with self.assertRaises(SidecarUnavailable) as caught:
                    f.decrypt(b"gAAAAA")
                took = time.monotonic() - started
                self.assertEqual(caught.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
                self.assertNotIsInstance(caught.exception, CryptographyInvalidToken)
                self.assertGreaterEqual(took, 0.49)
                # 1.5 s at most, with room for a busy machine; a grpcio that
                # fixed the clock lag would take 2.5 s here.
                self.assertLess(took, 2.2)

    def test_bad_timeouts(self):
        for timeout, error in [(0, ValueError), (-1, ValueError), (float("inf"), ValueError), (float("nan"), ValueError), ("5", TypeError), (True, TypeError)]:
            with self.subTest(timeout=timeout), self.assertRaises(error):
                self.Client("localhost:50051", timeout=timeout)

    def test_bad_targets(self):
        for target in ["", "localhost", "http://localhost:50051", "unix:relative.sock"]:
            with self.subTest(target=target), self.assertRaises(ValueError):
                self.Client(target)


class WireTest(unittest.TestCase):
    """The status-details reader, on bytes made by the Go server's encoder."""

    def test_reads_error_info(self):
        from fernet_sidecar import _errors

        def field(number, payload):
            return bytes([number << 3 | 2, len(payload)]) + payload

        info = field(1, b"EXPIRED") + field(2, b"fernet-sidecar")
        any_ = field(1, b"type.googleapis.com/google.rpc.ErrorInfo") + field(2, info)
        status = bytes([0x08, 3]) + field(2, b"decrypt: token expired") + field(3, any_)
        self.assertEqual(_errors._error_info_reason(status), "EXPIRED")
        other_domain = field(3, field(1, b"type.googleapis.com/google.rpc.ErrorInfo") + field(2, field(1, b"X") + field(2, b"other")))
        self.assertIsNone(_errors._error_info_reason(other_domain))
        with self.assertRaises(DecodeError):
            _errors._error_info_reason(status[:-3])  # truncated

    def test_registers_no_google_rpc_types(self):
        # An app's googleapis-common-protos registers these; a second,
        # different registration would fail its import.
        import fernet_sidecar._errors  # noqa: F401

        for name in ["google.rpc.Status", "google.rpc.ErrorInfo"]:
            with self.subTest(name=name), self.assertRaises(KeyError):
                descriptor_pool.Default().FindMessageTypeByName(name)


if __name__ == "__main__":
    unittest.main()
