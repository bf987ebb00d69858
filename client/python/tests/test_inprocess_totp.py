"""InProcessFernet's inspect, inspect_many, create_totp and verify_totp,
held to the real sidecar with the same keys: for each input, the same
result, or the same exception with the same reason and message.

The TOTP codes are made here (RFC 6238, as pyotp makes them) for the
current time step, and each case starts at least 3 s before the step ends,
so that the sidecar and the in-process backend see the same step."""

import base64
import binascii
import hashlib
import hmac
import math
import os
import struct
import time
import unittest
from urllib.parse import parse_qsl, urlsplit

import pyotp
from cryptography.fernet import Fernet

import fernet_sidecar
from fernet_sidecar import InvalidToken, SidecarError, SidecarFernet
from fernet_sidecar._inprocess import InProcessFernet

from . import env
from .test_inprocess import bad_padding_token

# A django-otp TOTPDevice.key (hex) and the RFC 6238 test secret in base32.
HEX_KEY = b"3132333435363738393031323334353637383930"
BASE32_KEY = base64.b32encode(binascii.unhexlify(HEX_KEY))
_HASHES = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def code_at(secret, counter, digits=6, algorithm="SHA1"):
    """The RFC 4226 code of the raw secret at counter."""
    digest = hmac.new(secret, struct.pack(">Q", counter), _HASHES[algorithm]).digest()
    offset = digest[-1] & 0xF
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return "%0*d" % (digits, value % 10**digits)


def settle(period=30, margin=3.0):
    """The current time step of period, waiting first into the next step
    when fewer than margin seconds are left in this one."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)
    return int(time.time()) // period


def outcome(call):
    """What call gives: ("ok", value), or the exception's type and what
    the app can see of it."""
    try:
        value = call()
    except (InvalidToken, SidecarError, TypeError, ValueError) as err:
        return failure(err)
    if isinstance(value, list):  # of a *_many call with return_exceptions
        value = [failure(v) if isinstance(v, Exception) else v for v in value]
    return ("ok", value)


def failure(err):
    if isinstance(err, InvalidToken):
        return ("InvalidToken", err.reason, err.message, getattr(err, "index", None))
    if isinstance(err, SidecarError):
        return (type(err).__name__, err.reason, err.message, err.code)
    return (type(err).__name__, str(err))


class Backends(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.primary_key = env.get("PRIMARY_KEY")
        cls.old_key = env.get("OLD_KEY")
        # Batches in several RPCs, each within the sidecar's limit.
        cls.sidecar = SidecarFernet(env.get("TCP_TARGET"), timeout=10, max_batch_items=int(env.get("MAX_BATCH_ITEMS")))
        cls.local = InProcessFernet([cls.primary_key, cls.old_key])
        cls.primary = Fernet(cls.primary_key)
        cls.old = Fernet(cls.old_key)

    @classmethod
    def tearDownClass(cls):
        cls.sidecar.close()

    def same(self, call, want=None):
        """call(backend) gives the same outcome on both; want, if given, is
        what the outcome starts with. Returns the sidecar's outcome."""
        sidecar, local = outcome(lambda: call(self.sidecar)), outcome(lambda: call(self.local))
        self.assertEqual(local, sidecar)
        if want is not None:
            self.assertEqual(sidecar[: len(want)], want)
        return sidecar


class InspectAgainstSidecar(Backends):
    def tokens(self):
        now = int(time.time())
        primary_token = self.primary.encrypt(b"secret")
        return {
            "primary": primary_token,
            "str": primary_token.decode(),
            "old": self.old.encrypt_at_time(b"secret", now - 100),
            "standard alphabet": primary_token.replace(b"-", b"+").replace(b"_", b"/"),
            "with whitespace": primary_token[:20] + b"\n " + primary_token[20:],
            "non-ASCII bytes": primary_token[:20] + "é".encode() + primary_token[20:],
            "unknown key": Fernet(Fernet.generate_key()).encrypt(b"secret"),
            "expired": self.primary.encrypt_at_time(b"s", now - 1000),
            "old, expired": self.old.encrypt_at_time(b"s", now - 1000),
            "future": self.primary.encrypt_at_time(b"s", now + 1000),
            "bad padding, signed": bad_padding_token(self.primary_key),
            "empty": b"",
            "garbage": b"not a token at all",
            "truncated": primary_token[:-8],
        }

    def test_inspect_gives_the_sidecars_verdicts(self):
        ttls = [None, 0, 10, -5, 1.5, True, 10**30, -(10**30), math.inf, -math.inf, math.nan]
        for name, token in self.tokens().items():
            for ttl in ttls:
                with self.subTest(token=name, ttl=ttl):
                    self.same(lambda f: f.inspect(token, ttl))
                    self.same(lambda f: f.decrypt_info(token, ttl))
        cases = [
            ("ttl of a str", b"x", "10", ("TypeError",)),
            ("token of an int", 5, None, ("TypeError",)),
            ("non-ASCII str", "gAAAAé", None, ("ValueError",)),
        ]
        for name, token, ttl, want in cases:
            with self.subTest(case=name):
                self.same(lambda f: f.inspect(token, ttl), want)
                self.same(lambda f: f.decrypt_info(token, ttl), want)

    def test_inspect_is_decrypt_info_without_the_plaintext(self):
        for name, token in self.tokens().items():
            with self.subTest(token=name):
                info = outcome(lambda: self.local.decrypt_info(token, 60))
                inspected = outcome(lambda: self.local.inspect(token, 60))
                if info[0] == "ok":
                    self.assertEqual(inspected, ("ok", fernet_sidecar.Inspected(*info[1][1:])))
                else:
                    self.assertEqual(inspected[:2], info[:2])
                    self.assertEqual(inspected[2].replace("inspect:", "decrypt:"), info[2])

    def test_inspect_many(self):
        tokens = list(self.tokens().values())
        for ttl in (None, 60):
            with self.subTest(ttl=ttl):
                got = self.same(lambda f: f.inspect_many(tokens, ttl, return_exceptions=True), ("ok",))[1]
                self.assertEqual(len(got), len(tokens))
                # inspect_many raises the first failure, with its index.
                self.same(lambda f: f.inspect_many(tokens, ttl), ("InvalidToken",))
        good = self.primary.encrypt(b"x")
        self.same(lambda f: f.inspect_many([]), ("ok", []))
        self.same(lambda f: f.inspect_many([good, good], 60), ("ok",))
        # Bad arguments fail before any token is looked at.
        # Every argument is checked before any token is worked on.
        for many in ("inspect_many", "decrypt_many", "rotate_many"):
            with self.subTest(method=many):
                self.same(lambda f: getattr(f, many)([b"bad", 5]), ("TypeError",))
                self.same(lambda f: getattr(f, many)(["\u00e9"]), ("ValueError",))
        for many in ("inspect_many", "decrypt_many"):
            with self.subTest(method=many):
                self.same(lambda f: getattr(f, many)([], "60"), ("TypeError",))
                self.same(lambda f: getattr(f, many)([b"bad"], "60"), ("TypeError",))


class CreateTOTPAgainstSidecar(Backends):
    def test_tokens_cross(self):
        for maker, checker in [(self.local, self.sidecar), (self.sidecar, self.local)]:
            with self.subTest(maker=type(maker).__name__):
                enrolment = maker.create_totp("alice@example.com", "Example")
                otp = pyotp.parse_uri(enrolment.provisioning_uri)
                settle()
                self.assertTrue(checker.verify_totp(enrolment.token, otp.now()).valid)

    def test_provisioning_uris_have_one_form(self):
        cases = [
            ("alice@example.com", "Example", {}),
            ("bob", "", {}),
            ("carol smith", "Acme Inc.", {"digits": 8, "period": 60, "algorithm": "sha256"}),
            ("dave/+&?=%#", "Ünïcode ✓ ~-_.", {"algorithm": "SHA512", "secret_bytes": 64}),
            ("e" * 256, "i" * 256, {"secret_bytes": 16, "period": 3600, "digits": 7}),
            ("é" * 128, "", {"digits": 0, "period": 0, "secret_bytes": 0}),
        ]
        for account, issuer, kwargs in cases:
            with self.subTest(account=account[:10], issuer=issuer[:10], **kwargs):
                want = self.sidecar.create_totp(account, issuer, **kwargs)
                got = self.local.create_totp(account, issuer, **kwargs)
                self.assertEqual(got.key_id, want.key_id)
                want_secret, want_uri = self.uri_parts(want)
                got_secret, got_uri = self.uri_parts(got)
                self.assertEqual(got_uri, want_uri)
                self.assertEqual(len(got_secret), len(want_secret))
                self.assertNotEqual(got_secret, want_secret)
                # Byte for byte, but for the secret.
                self.assertEqual(got.provisioning_uri.replace(got_secret, "S"), want.provisioning_uri.replace(want_secret, "S"))

    def uri_parts(self, enrolment):
        """The secret of enrolment, checked to be its token's plaintext and
        the URI's secret parameter, and the rest of its URI, parsed."""
        secret = self.primary.decrypt(enrolment.token).decode()
        parts = urlsplit(enrolment.provisioning_uri)
        query = parse_qsl(parts.query, strict_parsing=True)
        keys = [k for k, _ in query]
        self.assertEqual(len(keys), len(set(keys)))
        query = dict(query)
        self.assertEqual(query.pop("secret"), secret)
        self.assertEqual(base64.b32encode(base64.b32decode(secret + "=" * (-len(secret) % 8))).rstrip(b"=").decode(), secret)
        return secret, (parts.scheme, parts.netloc, parts.path, query, parts.fragment)

    def test_same_errors(self):
        cases = [
            ("empty account", ("",), {}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("colon in the account", ("a:b",), {}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("colon in the issuer", ("a", "x:y"), {}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("account over 256 bytes", ("é" * 129,), {}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("issuer over 256 bytes", ("a", "i" * 257), {}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("5 digits", ("a",), {"digits": 5}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("9 digits", ("a",), {"digits": 9}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("period 3601", ("a",), {"period": 3601}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("15 secret bytes", ("a",), {"secret_bytes": 15}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("65 secret bytes", ("a",), {"secret_bytes": 65}, ("SidecarError", "INVALID_TOTP_PARAMETER")),
            ("unknown algorithm", ("a",), {"algorithm": "MD5"}, ("ValueError",)),
            ("algorithm not a str", ("a",), {"algorithm": 1}, ("ValueError",)),
            ("negative digits", ("a",), {"digits": -1}, ("ValueError",)),
            ("digits of a str", ("a",), {"digits": "6"}, ("TypeError",)),
            ("account of bytes", (b"a",), {}, None),
            ("account of None", (None,), {}, None),
        ]
        for name, args, kwargs, want in cases:
            with self.subTest(case=name):
                # A fresh secret each time: of an enrolment, compare the key id.
                self.same(lambda f: f.create_totp(*args, **kwargs).key_id, want)


class VerifyTOTPAgainstSidecar(Backends):
    def token(self, plaintext, fernet=None):
        return (fernet or self.primary).encrypt(plaintext)

    def test_codes_in_and_out_of_the_window(self):
        secret = os.urandom(20)
        b32 = base64.b32encode(secret)
        token, old_token = self.token(b32), self.token(b32, self.old)
        # (name, token, drift of the code, last_counter relative to now, kwargs, want)
        cases = [
            ("now", token, 0, None, {}, ("VALID", 0)),
            ("old key", old_token, 0, None, {}, ("VALID", 0)),
            ("step before", token, -1, None, {}, ("VALID", -1)),
            ("step after", token, 1, None, {}, ("VALID", 1)),
            ("two before, window 1", token, -2, None, {}, ("INVALID_CODE", 0)),
            ("two after, window 1", token, 2, None, {}, ("INVALID_CODE", 0)),
            ("two after, window 2", token, 2, None, {"window": 2}, ("VALID", 2)),
            ("ten before, window 10", token, -10, None, {"window": 10}, ("VALID", -10)),
            ("step after, window 0", token, 1, None, {"window": 0}, ("INVALID_CODE", 0)),
            ("step after, window None means 1", token, 1, None, {"window": None}, ("VALID", 1)),
            ("now, window 0", token, 0, None, {"window": 0}, ("VALID", 0)),
            ("replayed", token, 0, 0, {}, ("REPLAYED", 0)),
            ("replayed, earlier step", token, -1, 0, {}, ("REPLAYED", -1)),
            ("after the last", token, 0, -1, {}, ("VALID", 0)),
            ("next step, now used", token, 1, 0, {}, ("VALID", 1)),
            ("last counter far ahead", token, 0, 10**6, {}, ("REPLAYED", 0)),
            ("8 digits SHA256 60 s", token, 0, None, {"digits": 8, "period": 60, "algorithm": "SHA256"}, ("VALID", 0)),
            ("7 digits SHA512", token, -1, None, {"digits": 7, "algorithm": "sha512"}, ("VALID", -1)),
            ("SHA1 code, SHA256 asked", token, 0, None, {"algorithm": "SHA256", "code_algorithm": "SHA1"}, ("INVALID_CODE", 0)),
            ("zero digits and period mean 6 and 30", token, 0, None, {"digits": 0, "period": 0}, ("VALID", 0)),
        ]
        for name, tok, drift, last, kwargs, want in cases:
            with self.subTest(case=name):
                kwargs = dict(kwargs)
                period = kwargs.get("period") or 30
                digits = kwargs.get("digits") or 6
                algorithm = kwargs.pop("code_algorithm", kwargs.get("algorithm", "SHA1")).upper()
                now = settle(period)
                code = code_at(secret, now + drift, digits, algorithm)
                last_counter = None if last is None else now + last
                got = self.same(lambda f: f.verify_totp(tok, code, last_counter, **kwargs), ("ok",))[1]
                self.assertEqual((got.outcome, got.drift), want)
                self.assertEqual(got.counter, 0 if want[0] == "INVALID_CODE" else now + drift)

    def test_wrong_codes(self):
        secret = os.urandom(20)
        token = self.token(base64.b32encode(secret))
        now = settle()
        codes = {code_at(secret, now + d) for d in range(-10, 11)}
        wrong = next(c for c in ("%06d" % n for n in range(10**6)) if c not in codes)
        cases = [
            ("no step's code", wrong),
            ("too short", code_at(secret, now)[:5]),
            ("too long", code_at(secret, now) + "0"),
            ("8 digits for 6", code_at(secret, now, 8)),
            ("spaces", " " + code_at(secret, now)),
            ("empty", ""),
            ("not digits", "abcdef"),
            ("non-ASCII", "١٢٣٤٥٦"),
        ]
        for name, code in cases:
            with self.subTest(case=name):
                settle()
                got = self.same(lambda f: f.verify_totp(token, code, window=10), ("ok",))[1]
                self.assertEqual(got[:3], ("INVALID_CODE", 0, 0))

    def test_which_step_wins_when_several_match(self):
        # A secret whose code is the same at two steps of the window, found
        # and used within one time step (the search may take a while).
        while True:
            now = settle(margin=5)
            twins = None
            while not twins:
                secret = os.urandom(20)
                steps = {}
                for counter in range(now - 10, now + 11):
                    steps.setdefault(code_at(secret, counter), []).append(counter)
                twins = next((s for s in steps.values() if len(s) > 1), None)
            if settle(margin=3) == now:
                break
        first, second = twins[0], twins[1]
        code = code_at(secret, first)
        token = self.token(base64.b32encode(secret))
        for last, want in [(None, first), (first - 1, first), (first, second), (second, None)]:
            with self.subTest(last_counter=last):
                got = self.same(lambda f: f.verify_totp(token, code, last, window=10), ("ok",))[1]
                if want is None:  # all used: REPLAYED, at the earliest step
                    self.assertEqual((got.outcome, got.counter), ("REPLAYED", first))
                else:
                    self.assertEqual((got.outcome, got.counter, got.drift), ("VALID", want, want - now))

    def test_secret_encodings(self):
        base32_hex = pyotp.TOTP(BASE32_KEY.decode())
        cases = [
            ("hex", HEX_KEY, "hex", True),
            ("hex, upper case", HEX_KEY.upper(), "hex", True),
            ("base32", BASE32_KEY, "base32", True),
            ("base32, lower case with spaces", b" ".join(BASE32_KEY.lower()[i : i + 4] for i in range(0, 32, 4)), "base32", True),
            ("base32, padded", base64.b32encode(b"1234567890123456"), "base32", False),
            ("base32, with CR LF", BASE32_KEY[:16] + b"\r\n" + BASE32_KEY[16:], "base32", None),
            ("base32, 0xFF as the last group", b"AB" + b"\xff" * 6, "base32", None),
            ("base32 of the hex text", HEX_KEY, "base32", None),
            ("hex of a base32 text", BASE32_KEY, "hex", None),
            ("hex, odd length", HEX_KEY[:-1], "hex", None),
            ("hex with a space", HEX_KEY[:10] + b" " + HEX_KEY[10:], "hex", None),
            ("hex with 0x", b"0x" + HEX_KEY, "hex", None),
            ("empty, base32", b"", "base32", None),
            ("empty, hex", b"", "hex", None),
            ("base32, 1 left over", BASE32_KEY + b"A", "base32", None),
            ("base32, 3 left over", BASE32_KEY + b"AAA", "base32", None),
            ("base32, 6 left over", BASE32_KEY + b"AAAAAA", "base32", None),
            ("base32, 2 left over", BASE32_KEY + b"BA", "base32", False),
            ("base32 with a 1", b"JBSWY3DPEHPK3PX1", "base32", None),
            ("base32 with = inside", b"JBSWY3DP=EHPK3PX", "base32", None),
            ("base32 with a tab", b"JBSWY3DP\tEHPK3PXP", "base32", None),
            ("base32, padding only", b"========", "base32", None),
            ("base32, non-ASCII", "JBSWY3DPÉHPK3PXP".encode(), "base32", None),
            ("binary", os.urandom(20), "base32", None),
        ]
        for name, plaintext, encoding, valid in cases:
            with self.subTest(case=name):
                token = self.token(plaintext)
                settle()
                code = base32_hex.now()
                got = self.same(lambda f: f.verify_totp(token, code, encoding=encoding))
                if valid is None:
                    self.assertEqual(got[:2], ("SidecarError", "INVALID_TOTP_SECRET"))
                else:
                    self.assertEqual((got[0], got[1].valid), ("ok", valid))

    def test_same_errors(self):
        good = self.token(BASE32_KEY)
        not_a_secret = self.token(b"this is no secret!")
        unknown = Fernet(Fernet.generate_key()).encrypt(BASE32_KEY)
        param, secret = ("SidecarError", "INVALID_TOTP_PARAMETER"), ("SidecarError", "INVALID_TOTP_SECRET")
        cases = [
            ("garbage token", b"not a token", {}, ("InvalidToken", "MALFORMED")),
            ("unknown key", unknown, {}, ("InvalidToken", "INVALID_SIGNATURE")),
            ("bad padding, signed", bad_padding_token(self.primary_key), {}, ("InvalidToken", "MALFORMED")),
            ("expired old token: no TTL", self.old.encrypt_at_time(BASE32_KEY, 1_000_000), {}, ("ok",)),
            ("not a secret", not_a_secret, {}, secret),
            ("5 digits", good, {"digits": 5}, param),
            ("9 digits", good, {"digits": 9}, param),
            ("period 3601", good, {"period": 3601}, param),
            ("window 11", good, {"window": 11}, param),
            ("window 10", good, {"window": 10}, ("ok",)),
            ("period 3600", good, {"period": 3600}, ("ok",)),
            # The order of the sidecar's checks: parameters, token, secret, window.
            ("bad digits and a bad token", b"not a token", {"digits": 9}, param),
            ("bad window and a bad token", b"not a token", {"window": 11}, ("InvalidToken", "MALFORMED")),
            ("bad window and no secret", not_a_secret, {"window": 11}, secret),
            ("unknown algorithm", good, {"algorithm": "MD5"}, ("ValueError",)),
            ("unknown encoding", good, {"encoding": "base64"}, ("ValueError",)),
            ("negative window", good, {"window": -1}, ("ValueError",)),
            ("negative last counter", good, {"last_counter": -1}, ("ValueError",)),
            ("last counter over 64 bits", good, {"last_counter": 2**64}, ("ValueError",)),
            ("token of an int", 5, {}, ("TypeError",)),
            ("code of an int", good, {"code": 123456}, ("TypeError",)),
        ]
        for name, token, kwargs, want in cases:
            with self.subTest(case=name):
                kwargs = dict(kwargs)
                code = kwargs.pop("code", "123456")
                settle()  # in case 123456 is a code of the window's edge
                self.same(lambda f: f.verify_totp(token, code, **kwargs), want)


if __name__ == "__main__":
    unittest.main()
