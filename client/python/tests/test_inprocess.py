"""InProcessFernet, held to the real sidecar with the same keys: the same
plaintexts, key ids and reasons for the same inputs. Also the shared parts
of the framework integrations: make_fernet, PerProcess and the legacy
plaintext shapes."""

import base64
import inspect
import os
import select
import signal
import struct
import threading
import time
import unittest

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC

import fernet_sidecar
from fernet_sidecar import InvalidToken, SidecarFernet
from fernet_sidecar._backend import PerProcess, make_fernet
from fernet_sidecar._inprocess import InProcessFernet
from fernet_sidecar._legacy import TOTP_BASE32, TOTP_HEX, check_shape, looks_like

from . import env


def signed_token(key, timestamp, iv, ciphertext):
    """A token whose HMAC is right under key, whatever its ciphertext."""
    raw = base64.urlsafe_b64decode(key)
    body = b"\x80" + struct.pack(">Q", timestamp) + iv + ciphertext
    h = HMAC(raw[:16], hashes.SHA256())
    h.update(body)
    return base64.urlsafe_b64encode(body + h.finalize())


def bad_padding_token(key):
    """Signed by key, but the last block does not unpad."""
    raw = base64.urlsafe_b64decode(key)
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(raw[16:]), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(b"\x00" * 16) + encryptor.finalize()
    return signed_token(key, int(time.time()), iv, ciphertext)


class InProcessAgainstSidecar(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.primary_key = env.get("PRIMARY_KEY")
        cls.old_key = env.get("OLD_KEY")
        cls.sidecar = SidecarFernet(env.get("TCP_TARGET"), timeout=10)
        cls.local = InProcessFernet([cls.primary_key, cls.old_key])
        cls.python = MultiFernet([Fernet(cls.primary_key), Fernet(cls.old_key)])

    @classmethod
    def tearDownClass(cls):
        cls.sidecar.close()

    def outcome(self, f, call, *args):
        try:
            return "ok", call(f)(*args)
        except InvalidToken as err:
            self.assertNotIn(str(args[0])[:20], err.message)
            return "invalid", err.reason, err.message

    def test_status_names_the_same_keys(self):
        sidecar, local = self.sidecar.status(), self.local.status()
        self.assertEqual(local.primary_key_id, sidecar.primary_key_id)
        self.assertEqual(local.decrypt_only_key_ids, sidecar.decrypt_only_key_ids)
        self.assertEqual(local.version, "in-process")

    def test_tokens_cross(self):
        for data in [b"", b"JBSWY3DPEHPK3PXP", bytes(range(256))]:
            with self.subTest(size=len(data)):
                self.assertEqual(self.sidecar.decrypt(self.local.encrypt(data)), data)
                self.assertEqual(self.local.decrypt(self.sidecar.encrypt(data)), data)
                self.assertEqual(self.python.decrypt(self.local.encrypt(data)), data)

    def test_same_verdicts(self):
        now = int(time.time())
        unknown = Fernet.generate_key()
        primary_token = Fernet(self.primary_key).encrypt(b"secret")
        cases = {
            "primary": (primary_token, None),
            "old": (Fernet(self.old_key).encrypt(b"secret"), None),
            "str": (primary_token.decode(), None),
            "standard alphabet": (primary_token.replace(b"-", b"+").replace(b"_", b"/"), None),
            "with whitespace": (primary_token[:20] + b"\n " + primary_token[20:], None),
            "unknown key": (Fernet(unknown).encrypt(b"secret"), None),
            "unknown key, expired": (Fernet(unknown).encrypt_at_time(b"s", now - 1000), 10),
            "expired": (Fernet(self.primary_key).encrypt_at_time(b"s", now - 1000), 10),
            "old, expired": (Fernet(self.old_key).encrypt_at_time(b"s", now - 1000), 10),
            "future": (Fernet(self.primary_key).encrypt_at_time(b"s", now + 1000), 10),
            "future, no ttl": (Fernet(self.primary_key).encrypt_at_time(b"s", now + 1000), None),
            "ttl zero, fresh": (primary_token, 0),
            "negative ttl": (primary_token, -5),
            "bad padding, signed": (bad_padding_token(self.primary_key), None),
            "empty": (b"", None),
            "garbage": (b"not a token at all", None),
            "missing padding": (primary_token.rstrip(b"="), None),
            "version byte": (base64.urlsafe_b64encode(b"\x81" + base64.urlsafe_b64decode(primary_token)[1:]), None),
            "short, signed": (signed_token(self.primary_key, now, b"\x00" * 16, b""), None),
            "not whole blocks, signed": (signed_token(self.primary_key, now, b"\x00" * 16, b"\x00" * 20), None),
            "truncated": (primary_token[:-8], None),
        }
        for name, (token, ttl) in cases.items():
            with self.subTest(case=name):
                for call in (lambda f: f.decrypt, lambda f: f.rotate if ttl is None else f.decrypt):
                    want = self.outcome(self.sidecar, call, token, *([] if ttl is None else [ttl]))
                    got = self.outcome(self.local, call, token, *([] if ttl is None else [ttl]))
                    if want[0] == "ok" and call(self.sidecar) == self.sidecar.rotate:
                        # Fresh tokens under the primary: compare what they hold.
                        want = ("ok", self.sidecar.decrypt(want[1]))
                        got = ("ok", self.local.decrypt(got[1]))
                    self.assertEqual(got, want)

    def test_decrypt_info(self):
        for name, key in [("primary", self.primary_key), ("old", self.old_key)]:
            with self.subTest(key=name):
                token = Fernet(key).encrypt(b"x")
                self.assertEqual(self.local.decrypt_info(token), self.sidecar.decrypt_info(token))
                self.assertEqual(self.local.extract_timestamp(token), Fernet(key).extract_timestamp(token))

    def test_rotate_changes_only_what_the_sidecar_changes(self):
        primary_token = Fernet(self.primary_key).encrypt(b"x")
        standard = primary_token.replace(b"-", b"+").replace(b"_", b"/")
        old_token = Fernet(self.old_key).encrypt_at_time(b"x", 1_000_000)
        for name, token in [("primary", primary_token), ("standard alphabet", standard), ("old", old_token)]:
            with self.subTest(token=name):
                unchanged = self.sidecar.rotate(token) == token
                rotated = self.local.rotate(token)
                self.assertEqual(rotated == token, unchanged)
                self.assertEqual(Fernet(self.primary_key).decrypt(rotated), b"x")
                self.assertEqual(Fernet(self.primary_key).extract_timestamp(rotated), Fernet._get_unverified_token_data(token)[0])

    def test_many(self):
        good = self.local.encrypt(b"a")
        got = self.local.decrypt_many([good, b"bad", good], return_exceptions=True)
        self.assertEqual(got[0], b"a")
        self.assertIsInstance(got[1], InvalidToken)
        self.assertEqual((got[1].reason, got[1].index), ("MALFORMED", 1))
        with self.assertRaises(InvalidToken):
            self.local.decrypt_many([good, b"bad"])
        rotated = self.local.rotate_many([Fernet(self.old_key).encrypt(b"b")])
        self.assertEqual(self.sidecar.decrypt_info(rotated[0]).needs_reencrypt, False)
        self.assertEqual([self.sidecar.decrypt(t) for t in self.local.encrypt_many([b"1", b"2"])], [b"1", b"2"])


class SameMethods(unittest.TestCase):
    def test_every_method_of_the_client_with_its_signature(self):
        methods = [name for name in vars(SidecarFernet) if not name.startswith("_") and callable(getattr(SidecarFernet, name))]
        self.assertIn("verify_totp", methods)
        for name in methods:
            with self.subTest(method=name):
                self.assertEqual(inspect.signature(getattr(InProcessFernet, name)), inspect.signature(getattr(SidecarFernet, name)))


class MakeFernet(unittest.TestCase):
    def test_backends(self):
        key = Fernet.generate_key()
        with make_fernet(backend="in-process", keys=[key]) as f:
            self.assertIsInstance(f, InProcessFernet)
        with make_fernet(target="127.0.0.1:1") as f:
            self.assertIsInstance(f, SidecarFernet)

    def test_bad_combinations_say_what_to_change(self):
        key = Fernet.generate_key()
        cases = [
            ({"backend": "in-process"}, ValueError, "needs keys"),
            ({"backend": "in-process", "keys": key}, ValueError, "list of Fernet keys"),
            ({"backend": "in-process", "keys": [b"short"]}, ValueError, "32 url-safe"),
            ({"backend": "in-process", "keys": [key], "max_attempts": 2}, TypeError, "max_attempts"),
            ({"keys": [key]}, ValueError, "in-process"),
            ({"backend": "vault"}, ValueError, "must be one of"),
        ]
        for kwargs, exc, text in cases:
            with self.subTest(kwargs=sorted(kwargs)):
                with self.assertRaises(exc) as caught:
                    make_fernet(**kwargs)
                self.assertIn(text, str(caught.exception))
                self.assertNotIn(key.decode(), str(caught.exception))


class PerProcessTest(unittest.TestCase):
    def test_one_per_process_made_anew_after_fork(self):
        made = []

        class Thing:
            closed = False

            def close(self):
                self.closed = True

        holder = PerProcess(lambda: made.append(Thing()) or made[-1])
        first = holder.get()
        self.assertIs(holder.get(), first)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a new object, the parent's left open
            ok = holder.get() is not first and not first.closed
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.close(write)
        self.assertEqual(os.read(read, 1), b"1")
        os.waitpid(pid, 0)
        os.close(read)
        holder.reset()
        self.assertTrue(first.closed)
        self.assertIsNot(holder.get(), first)


    def test_a_fork_while_another_thread_holds_the_lock(self):
        parent = os.getpid()
        entered, release = threading.Event(), threading.Event()

        def factory():
            if os.getpid() == parent:  # the parent's thread makes it slowly
                entered.set()
                release.wait(10)
            return object()

        holder = PerProcess(factory)
        thread = threading.Thread(target=holder.get)
        thread.start()
        try:
            self.assertTrue(entered.wait(10))  # the thread holds the lock
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: get() must not wait for a thread it does not have
                holder.get()
                os.write(write, b"1")
                os._exit(0)
            os.close(write)
            ready, _, _ = select.select([read], [], [], 10)
            if not ready:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.assertTrue(ready, "the child's get() deadlocked on the lock its parent's thread held")
            self.assertEqual(os.read(read, 1), b"1")
            os.close(read)
        finally:
            release.set()
            thread.join()


class LegacyShapes(unittest.TestCase):
    def test_shapes(self):
        cases = [
            (TOTP_BASE32, "JBSWY3DPEHPK3PXP", True),
            (TOTP_BASE32, "jbswy3dpehpk3pxp", True),
            (TOTP_BASE32, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", True),
            (TOTP_BASE32, "JBSWY3DPEHPK3P=", False),  # padding to no multiple of 8
            (TOTP_BASE32, "JBSWY3DPEHPK3PXPA", False),  # 17 = 1 mod 8
            (TOTP_BASE32, "JBSWY3DPEHPK3PX1", False),  # 1 is not base32
            (TOTP_BASE32, "JBSWY3DP", False),  # too short
            (TOTP_BASE32, "A" * 136, False),  # too long
            (TOTP_BASE32, "gAAAAABrA163Lt1YISfHEFcVHQpZd", False),
            (TOTP_HEX, "3132333435363738393031323334353637383930", True),
            (TOTP_HEX, "3132333435363738393031323334353637383930".upper(), True),
            (TOTP_HEX, "313233343536373839303132333435363738393", False),
            (TOTP_HEX, "3132333435363738393031323334353637383g30", False),
            (TOTP_HEX, "JBSWY3DPEHPK3PXP", False),
        ]
        for shape, value, want in cases:
            with self.subTest(shape=shape, value=value):
                self.assertEqual(looks_like(shape, value), want)
        self.assertFalse(looks_like(TOTP_BASE32, b"JBSWY3DPEHPK3PXP"))

    def test_unknown_shape(self):
        with self.assertRaises(ValueError):
            check_shape("base64")
        self.assertEqual(fernet_sidecar.LEGACY_SHAPES, ("totp-base32", "totp-hex"))
