#!/usr/bin/python3
"""Python's cryptography.fernet as the oracle for the fernet package's
differential tests (fernet/differential_test.go, fernet/spec_test.go).

Run as:  /usr/bin/python3 fernet/testdata/pyfernet.py MODE  < request.json

It talks JSON on stdin/stdout. Byte strings travel as standard base64
("..._b64" fields). Token and key strings travel as the base64 of their
UTF-8 bytes, decoded here with errors="surrogateescape", so that any Go
string (non-ASCII, even invalid UTF-8) reaches Fernet as a str holding the
same characters Go sees as non-ASCII.

Modes:
  probe     no input; prints the Python and cryptography versions.
  cases     no input; GENERATES a deterministic corpus (fixed seed) of
            decrypt cases, each with Python's verdicts (see judge()).
  verdicts  input: a JSON list of cases (name, keys, token_b64, ttl, now)
            without verdicts; output: the same list with verdicts.
  check     input: a JSON list of {keys, token_b64}; output: what
            MultiFernet.decrypt (no TTL) and extract_timestamp make of each
            token, and whether the token string is canonical.
  keys      input: a JSON list of {key_b64}; output: whether Fernet(key)
            accepts each key string and, if so, the 32 raw bytes.

Only the library decides verdicts. The "facts" each verdict carries (how
the token decodes, which key's HMAC matches, whether the time checks pass)
are computed here independently, for the Go side's error-kind checks and
for readable failure messages; they never override the library.
"""

import base64
import binascii
import hashlib
import hmac
import json
import random
import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED = 20240607
NOW = 1700000000
MAX_SKEW = 60
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
U64_MAX = 2**64 - 1


# --- transport -------------------------------------------------------------


def b64(b):
    return base64.b64encode(b).decode("ascii")


def unb64(s):
    return base64.b64decode(s.encode("ascii"), validate=True)


def str_to_wire(s):
    return b64(s.encode("utf-8", "surrogateescape"))


def wire_to_str(s):
    return unb64(s).decode("utf-8", "surrogateescape")


# --- the oracle ------------------------------------------------------------


def attempt(fn):
    """Runs fn, mapping the exceptions Fernet raises for bad input to a
    verdict. Anything else is a bug in this script and propagates."""
    try:
        return True, fn(), None
    except InvalidToken:
        return False, None, "InvalidToken"
    except ValueError as exc:  # non-ASCII str: raised before any decoding
        return False, None, "%s: %s" % (type(exc).__name__, exc)


def token_facts(keys, token, ttl, now):
    """Independent facts about a token, for diagnostics and error kinds."""
    facts = {
        "decoded": False,
        "canonical": False,
        "decoded_len": -1,
        "version": -1,
        "timestamp": None,
        "hmac_index": -1,
        "expired": False,
        "future": False,
    }
    try:
        data = base64.urlsafe_b64decode(token)
    except ValueError:  # binascii.Error, or non-ASCII str
        return facts
    facts["decoded"] = True
    facts["canonical"] = base64.urlsafe_b64encode(data).decode("ascii") == token
    facts["decoded_len"] = len(data)
    if data:
        facts["version"] = data[0]
    if len(data) >= 9:
        ts = int.from_bytes(data[1:9], "big")
        facts["timestamp"] = ts
        if ttl is not None:
            facts["expired"] = ts + ttl < now
            facts["future"] = now + MAX_SKEW < ts
    if len(data) >= 32:
        for i, k in enumerate(keys):
            signing = base64.urlsafe_b64decode(k)[:16]
            mac = hmac.new(signing, data[:-32], hashlib.sha256).digest()
            if hmac.compare_digest(mac, data[-32:]):
                facts["hmac_index"] = i
                break
    return facts


def judge(case):
    keys = case["keys"]
    token = wire_to_str(case["token_b64"])
    ttl = case["ttl"]
    now = case["now"]
    fernets = [Fernet(k) for k in keys]
    multi = MultiFernet(fernets)

    if ttl is None:
        def dec(f):
            return f.decrypt(token)
    else:
        def dec(f):
            return f.decrypt_at_time(token, ttl, now)

    ok, plaintext, error = attempt(lambda: dec(multi))
    index = -1
    for i, f in enumerate(fernets):
        ok_i, plaintext_i, _ = attempt(lambda: dec(f))
        if ok_i:
            index = i
            break
    if ok != (index >= 0) or (ok and plaintext != plaintext_i):
        raise AssertionError("MultiFernet and its Fernets disagree on %r" % case)

    verdict = {"ok": ok, "error": error, "key_index": index}
    if ok:
        verdict["plaintext_b64"] = b64(plaintext)
        verdict["timestamp"] = fernets[index].extract_timestamp(token)

    # rotate: decrypt with any key, no time checks, re-encrypt under the
    # first key with the original timestamp.
    r_ok, rotated, r_error = attempt(lambda: multi.rotate(token))
    rot = {"ok": r_ok, "error": r_error, "key_index": -1}
    if r_ok:
        for i, f in enumerate(fernets):
            if attempt(lambda: f.decrypt(token))[0]:
                rot["key_index"] = i
                break
        rot["token"] = rotated.decode("ascii")
        rot["plaintext_b64"] = b64(fernets[0].decrypt(rotated))
        rot["timestamp"] = fernets[0].extract_timestamp(rotated)
    verdict["rotate"] = rot
    verdict["facts"] = token_facts(keys, token, ttl, now)
    return verdict


def check_token(item):
    keys = item["keys"]
    token = wire_to_str(item["token_b64"])
    fernets = [Fernet(k) for k in keys]
    out = {"canonical": False}
    try:
        raw = base64.urlsafe_b64decode(token)
        out["canonical"] = base64.urlsafe_b64encode(raw).decode("ascii") == token
    except ValueError:
        pass
    ok, plaintext, error = attempt(lambda: MultiFernet(fernets).decrypt(token))
    out.update({"ok": ok, "error": error, "key_index": -1})
    if ok:
        out["plaintext_b64"] = b64(plaintext)
        for i, f in enumerate(fernets):
            if attempt(lambda: f.decrypt(token))[0]:
                out["key_index"] = i
                out["timestamp"] = f.extract_timestamp(token)
                break
    return out


def check_key(item):
    key = wire_to_str(item["key_b64"])
    try:
        f = Fernet(key)
    except ValueError as exc:  # binascii.Error, UnicodeEncodeError included
        return {"accepted": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return {"accepted": True, "raw_b64": b64(f._signing_key + f._encryption_key)}


# --- corpus ----------------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
JUNK = "!.\x00\x7f~@#$%^&*()[]{}<>?,;:'\"\\|` "
WHITESPACE = " \n\t\r\v\f"
NON_ASCII = [
    "\u00e9",  # é
    "\u00a0",  # no-break space
    "\u0085",  # next line (Unicode whitespace)
    "\u2028",  # line separator
    "\u3000",  # ideographic space
    "\uff21",  # fullwidth A
    "\u0080",
    "\u00ff",
    "\U0001f600",
]


class Corpus:
    def __init__(self):
        self.rng = random.Random(SEED)
        self.cases = []
        self.counts = {}

    def add(self, name, keys, token, ttl=None, now=NOW):
        # The engine takes ttl and now as int64.
        for v in (ttl, now):
            if v is not None and not I64_MIN <= v <= I64_MAX:
                raise ValueError("case %s: %d is outside int64" % (name, v))
        category = name.split("/", 1)[0]
        self.counts[category] = self.counts.get(category, 0) + 1
        self.cases.append(
            {
                "name": "%s#%d" % (name, len(self.cases)),
                "keys": list(keys),
                "token_b64": str_to_wire(token),
                "ttl": ttl,
                "now": now,
            }
        )

    # key and token construction

    def key(self, signing=None, encryption=None):
        signing = signing if signing is not None else self.rng.randbytes(16)
        encryption = encryption if encryption is not None else self.rng.randbytes(16)
        return base64.urlsafe_b64encode(signing + encryption).decode("ascii")

    def iv(self):
        return self.rng.randbytes(16)

    def encrypt(self, key, plaintext, ts=NOW - 10, iv=None):
        """Fernet's own encryption, with a seeded IV so the corpus is stable."""
        iv = iv if iv is not None else self.iv()
        return Fernet(key)._encrypt_from_parts(plaintext, ts, iv).decode("ascii")

    @staticmethod
    def raw(token):
        return base64.urlsafe_b64decode(token)

    @staticmethod
    def enc(raw):
        return base64.urlsafe_b64encode(raw).decode("ascii")

    @staticmethod
    def sign(key, body):
        signing = base64.urlsafe_b64decode(key)[:16]
        return body + hmac.new(signing, body, hashlib.sha256).digest()

    @staticmethod
    def aes_cbc(key, iv, blocks):
        """Raw AES-128-CBC under key's encryption half, without padding."""
        enc = Cipher(
            algorithms.AES(base64.urlsafe_b64decode(key)[16:]), modes.CBC(iv)
        ).encryptor()
        return enc.update(blocks) + enc.finalize()

    def resigned(self, key, version=0x80, ts=NOW - 10, iv=None, ciphertext=b""):
        iv = iv if iv is not None else self.iv()
        body = bytes([version]) + ts.to_bytes(8, "big") + iv + ciphertext
        return self.enc(self.sign(key, body))

    def token_with_padding(self, key, npad, need_dash=True):
        """A valid token whose base64 ends in npad "=" and that uses "-" or
        "_" (so alphabet swaps change it)."""
        length = {2: 0, 1: 20, 0: 40}[npad]  # 73, 89, 105 raw bytes
        while True:
            t = self.encrypt(key, self.rng.randbytes(length))
            if t.count("=") == npad and (not need_dash or "-" in t or "_" in t):
                return t

    def insert(self, s, pos, what):
        return s[:pos] + what + s[pos:]

    def pos(self, s):
        return self.rng.randrange(len(s) + 1)


def generate():
    c = Corpus()
    rng = c.rng
    K = [c.key() for _ in range(4)]
    K0, K1, K2, K3 = K

    # roundtrip: plain valid tokens of many plaintext lengths.
    plaintexts = [
        b"",
        b"a",
        b"hello",
        "h\u00e9llo w\u00f6rld \u2713".encode("utf-8"),
        b"\x00" * 5,
        b"\x10" * 16,
        b"\x01",
    ] + [rng.randbytes(n) for n in (15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 1000, 5000)]
    for i, pt in enumerate(plaintexts):
        t = c.encrypt(K0, pt)
        c.add("roundtrip/len%d-%d/no-ttl" % (len(pt), i), [K0], t)
        c.add("roundtrip/len%d-%d/ttl60" % (len(pt), i), [K0], t, 60, NOW)
        c.add("roundtrip/len%d-%d/second-key" % (len(pt), i), [K1, K0], t)
        c.add("roundtrip/len%d-%d/wrong-keys" % (len(pt), i), [K1, K2], t)

    # b64: Python's lenient base64 on valid tokens of each padding shape.
    bases = {
        "pad2": c.token_with_padding(K0, 2),
        "pad1": c.token_with_padding(K0, 1),
        "pad0": c.token_with_padding(K0, 0),
    }
    for shape, t in bases.items():
        def add(what, tok, ttl=None, now=NOW, keys=(K0,)):
            c.add("b64/%s/%s" % (shape, what), keys, tok, ttl, now)

        body = t.rstrip("=")
        pad = t[len(body):]
        add("canonical", t)
        add("std-alphabet", t.replace("-", "+").replace("_", "/"))
        add("std-alphabet/ttl", t.replace("-", "+").replace("_", "/"), 60, NOW)
        for i in range(4):
            add("mixed-alphabet-%d" % i, "".join(
                {"-": "+", "_": "/"}.get(ch, ch) if rng.random() < 0.5 else ch for ch in t))
        for ws in WHITESPACE:
            add("ws-%r-leading" % ws, ws + t)
            add("ws-%r-trailing" % ws, t + ws)
            p = c.pos(body)
            add("ws-%r-at-%d" % (ws, p), c.insert(t, p, ws))
            add("ws-%r-everywhere" % ws, ws.join(t))
        add("mime-76", "\n".join(t[i:i + 76] for i in range(0, len(t), 76)) + "\n")
        add("mime-64-crlf", "\r\n".join(t[i:i + 64] for i in range(0, len(t), 64)))
        for i in range(8):
            tok = t
            for _ in range(rng.randrange(1, 20)):
                tok = c.insert(tok, c.pos(tok), rng.choice(WHITESPACE))
            add("ws-random-%d" % i, tok)
        for j in JUNK:
            p = c.pos(body)
            add("junk-%r-at-%d" % (j, p), c.insert(t, p, j))
            add("junk-%r-leading" % j, j + t)
        for i in range(8):
            tok = t
            for _ in range(rng.randrange(1, 30)):
                tok = c.insert(tok, c.pos(tok), rng.choice(JUNK + WHITESPACE))
            add("junk-random-%d" % i, tok)
        for n in range(1, 7):
            add("extra-pad-%d" % n, t + "=" * n)
            add("extra-pad-%d-ws" % n, t + " =\n" * n)
        for n in range(1, 5):
            add("leading-pad-%d" % n, "=" * n + t)
        # "=" at every position: ignored at quad positions 0 and 1, pending at
        # 2, final at 3 (then the rest is ignored and the token is cut short).
        for p in range(len(body) + 1):
            add("eq-at-%d" % p, c.insert(t, p, "="))
        for p in sorted(rng.sample(range(len(body) + 1), 30)):
            add("eqeq-at-%d" % p, c.insert(t, p, "=="))
            add("eq-ws-eq-at-%d" % p, c.insert(t, p, "=\n="))
        # Runs of "=" count only from quad position 2 on: at positions 0 and
        # 1 even "====" is ignored.
        for p in range(0, min(len(body) + 1, 48)):
            add("eq3-at-%d" % p, c.insert(t, p, "==="))
            add("eq4-at-%d" % p, c.insert(t, p, "===="))
        if pad:
            add("missing-padding", body)
            add("missing-padding/ttl", body, 60, NOW)
            if len(pad) == 2:
                add("half-padding", body + "=")
                add("padding-split-by-ws", body + "= =")
                add("padding-split-by-junk", body + "=!=")
            # Non-zero trailing bits: the last data character carries 2 ("=")
            # or 4 ("==") unused low bits.
            last = ALPHABET.index(body[-1])
            unused = 4 if len(pad) == 2 else 2
            for low in range(1 << unused):
                v = (last & ~((1 << unused) - 1)) | low
                add("trailing-bits-%d" % low, body[:-1] + ALPHABET[v] + pad)
        # Data after the first complete padding group is ignored; without
        # padding, it is decoded (and breaks the HMAC).
        other = c.encrypt(K1, b"other")
        for what, tail in [
            ("AAAA", "AAAA"),
            ("gAAA", "gAAA"),
            ("junk", "!!not base64!!"),
            ("pad-AAAA", "=AAAA"),
            ("pad-pad-AAAA", "==AAAA"),
            ("ws-AAAA", "\nAAAA"),
            ("AA==", "AA=="),
            ("another-token", other),
            ("same-token", t),
        ]:
            add("after-padding-%s" % what, t + tail)
            add("after-padding-%s/multi" % what, t + tail, keys=(K1, K0))
        add("combined", " " + t.replace("_", "/")[:40] + "\n\t" + t.replace("_", "/")[40:] + "!==\n")

    # trunc: truncation at every length, of the string and of the bytes.
    for shape, t in bases.items():
        raw = c.raw(t)
        for n in range(len(t) + 1):
            c.add("trunc/%s/string-%d" % (shape, n), [K0], t[:n])
            if n % 4:
                c.add("trunc/%s/string-%d-repadded" % (shape, n), [K0], t[:n] + "=" * (-n % 4))
        for n in range(len(raw) + 1):
            c.add("trunc/%s/raw-%d" % (shape, n), [K0], c.enc(raw[:n]))
        for n in range(0, len(raw), 7):
            c.add("trunc/%s/raw-%d/ttl" % (shape, n), [K0], c.enc(raw[:n]), 60, NOW)
        # and bytes cut from the front
        for n in range(1, 40, 3):
            c.add("trunc/%s/raw-front-%d" % (shape, n), [K0], c.enc(raw[n:]))

    # mutate: single-character and single-bit changes.
    t = bases["pad2"]
    raw = c.raw(t)
    for p in range(len(t)):
        ch = rng.choice([a for a in ALPHABET if a != t[p]])
        c.add("mutate/char-%d-%r-to-%r" % (p, t[p], ch), [K0], t[:p] + ch + t[p + 1:])
        c.add("mutate/delete-char-%d" % p, [K0], t[:p] + t[p + 1:])
        if p % 5 == 0:
            c.add("mutate/dup-char-%d" % p, [K0], t[:p] + t[p] + t[p:])
    for i in range(len(raw) * 8):
        m = bytearray(raw)
        m[i // 8] ^= 0x80 >> (i % 8)
        c.add("mutate/bit-%d" % i, [K0], c.enc(bytes(m)))
    t1 = bases["pad0"]
    raw1 = c.raw(t1)
    for i in sorted(rng.sample(range(len(raw1) * 8), 150)):
        m = bytearray(raw1)
        m[i // 8] ^= 0x80 >> (i % 8)
        ttl, now = rng.choice([(None, NOW), (60, NOW), (0, NOW - 10)])
        c.add("mutate/pad0-bit-%d" % i, [K1, K0], c.enc(bytes(m)), ttl, now)

    # resigned: hand-built tokens with a valid HMAC under K0.
    iv = c.iv()
    for version in (0x00, 0x01, 0x7F, 0x81, 0xFE, 0xFF):
        ct = c.aes_cbc(K0, iv, b"hello" + b"\x0b" * 11)
        c.add("resigned/version-0x%02x" % version, [K0], c.resigned(K0, version, iv=iv, ciphertext=ct))
        c.add("resigned/version-0x%02x/rot" % version, [K1, K0], c.resigned(K0, version, iv=iv, ciphertext=ct))
    for length in range(0, 101):
        if length >= 41:
            body = b"\x80" + (NOW - 10).to_bytes(8, "big") + rng.randbytes(length - 41)
            tok = c.enc(c.sign(K0, body))
        elif length >= 33:
            tok = c.enc(c.sign(K0, b"\x80" + rng.randbytes(length - 33)))
        elif length >= 1:
            tok = c.enc(b"\x80" + rng.randbytes(length - 1))
        else:
            tok = ""
        c.add("resigned/length-%d" % length, [K0], tok)
        c.add("resigned/length-%d/ttl" % length, [K0], tok, 3600, NOW)
        c.add("resigned/length-%d/multi" % length, [K1, K0], tok)
    # 32 bytes: the HMAC of the empty string is the whole token. Find a key
    # whose HMAC("") starts with 0x80 so the token gets past the version check.
    while True:
        k = c.key()
        mac = c.sign(k, b"")
        if mac[0] == 0x80:
            c.add("resigned/length-32-self-signed", [k], c.enc(mac))
            c.add("resigned/length-32-self-signed/ttl-none-multi", [K0, k], c.enc(mac))
            break
    # ciphertext lengths 0..80: empty, unaligned, and aligned (random blocks)
    for n in range(0, 81):
        ct = rng.randbytes(n)
        c.add("resigned/ciphertext-len-%d" % n, [K0], c.resigned(K0, iv=iv, ciphertext=ct))
    # valid ciphertext with bytes added or removed
    ct = c.aes_cbc(K0, iv, b"0123456789abcdef" + b"\x10" * 16)
    for delta in range(-17, 18):
        cut = ct[: len(ct) + delta] if delta < 0 else ct + rng.randbytes(delta)
        c.add("resigned/valid-ct%+d" % delta, [K0], c.resigned(K0, iv=iv, ciphertext=cut))
    # PKCS7 padding, right and wrong
    pads = {
        "pad-01": b"A" * 15 + b"\x01",
        "pad-10-full-block": b"\x10" * 16,
        "pad-05": b"A" * 11 + b"\x05" * 5,
        "pad-zero": b"A" * 15 + b"\x00",
        "pad-11": b"A" * 15 + b"\x11",
        "pad-20": b"A" * 15 + b"\x20",
        "pad-80": b"A" * 15 + b"\x80",
        "pad-ff": b"A" * 15 + b"\xff",
        "pad-10-all-zero-but-last": b"\x00" * 15 + b"\x10",
        "pad-10-one-wrong": b"\x10" * 7 + b"\x11" + b"\x10" * 8,
        "pad-02-inconsistent": b"A" * 14 + b"\x01\x02",
        "pad-03-inconsistent": b"A" * 13 + b"\x03\x02\x03",
        "pad-0f-ok": b"A" + b"\x0f" * 15,
        "pad-0f-first-wrong": b"A" + b"\x0e" + b"\x0f" * 14,
        "pad-all-zero": b"\x00" * 16,
    }
    for name, last in pads.items():
        for prefix_blocks in (0, 1, 3):
            blocks = rng.randbytes(16 * prefix_blocks) + last
            ct = c.aes_cbc(K0, iv, blocks)
            tok = c.resigned(K0, iv=iv, ciphertext=ct)
            c.add("resigned/%s/blocks-%d" % (name, prefix_blocks + 1), [K0], tok)
            c.add("resigned/%s/blocks-%d/multi" % (name, prefix_blocks + 1), [K0, K1], tok)
            c.add("resigned/%s/blocks-%d/ttl" % (name, prefix_blocks + 1), [K0], tok, 60, NOW)

    # time: timestamps x ttls x nows, around every boundary.
    tok_cache = {}

    def tok_at(ts):
        if ts not in tok_cache:
            tok_cache[ts] = c.encrypt(K0, b"time", ts)
        return tok_cache[ts]

    nows = [0, 1, 59, 60, 61, NOW, 2**32, 2**62, I64_MAX - 60, I64_MAX, -1, -59, -60, -61, -NOW, I64_MIN]
    ttls = [None, 0, 1, -1, 59, 60, 61, 3600, -3600, I64_MAX, I64_MIN, I64_MIN + 1, I64_MAX - 1, 2**62]
    for now in nows:
        stamps = {0, 1, 2**63 - 1, 2**63, 2**63 + 1, U64_MAX, U64_MAX - 1}
        for d in (-3601, -3600, -61, -60, -59, -1, 0, 1, 59, 60, 61):
            stamps.add(now + d)
        for ts in sorted(s for s in stamps if 0 <= s <= U64_MAX):
            for ttl in ttls:
                c.add("time/ts=%d/ttl=%s/now=%d" % (ts, ttl, now), [K0], tok_at(ts), ttl, now)
            # ttl that puts ts + ttl exactly at now, and one below/above
            for d in (-1, 0, 1):
                ttl = now - ts + d
                if I64_MIN <= ttl <= I64_MAX:
                    c.add("time/ts=%d/ttl=now-ts%+d/now=%d" % (ts, d, now), [K0], tok_at(ts), ttl, now)
    # large timestamps through a second key, and a bad HMAC with failing time
    for ts in (2**63 - 1, 2**63, U64_MAX):
        t = tok_at(ts)
        c.add("time/ts=%d/second-key" % ts, [K1, K0], t, 60, min(ts, I64_MAX))
        c.add("time/ts=%d/wrong-key-expired" % ts, [K1], t, 0, I64_MAX)
        c.add("time/ts=%d/wrong-key-future" % ts, [K1], t, 0, 0)
        c.add("time/ts=%d/wrong-key-no-ttl" % ts, [K1], t)

    # multi: MultiFernet with 1-3 keys.
    token_of = {i: c.encrypt(K[i], b"under key %d" % i) for i in range(4)}
    rings = [
        [0], [1], [0, 1], [1, 0], [1, 2], [2, 1, 0], [1, 2, 0], [0, 1, 2], [3, 2, 1],
        [0, 0], [1, 1, 0], [2, 0, 2], [3, 3, 3],
    ]
    for ring in rings:
        for under in range(4):
            for ttl, now in ((None, NOW), (60, NOW), (5, NOW), (-100, NOW)):
                c.add("multi/ring%s/under%d/ttl=%s" % ("".join(map(str, ring)), under, ttl),
                      [K[i] for i in ring], token_of[under], ttl, now)
    # keys sharing the signing half: the HMAC passes under each, the padding
    # fails under all but the right one, and Python moves on.
    signing0 = base64.urlsafe_b64decode(K0)[:16]
    S = [c.key(signing=signing0) for _ in range(3)]  # S[i] shares K0's signing half
    shared = {"K0": K0, "S0": S[0], "S1": S[1], "S2": S[2], "K1": K1}

    def shared_token(under, pt):
        # A token under `under` whose padding fails under every other key
        # that shares its signing half (re-rolled until it does).
        while True:
            t = c.encrypt(shared[under], pt)
            clash = False
            for name, k in shared.items():
                if name != under and k != K1:
                    try:
                        Fernet(k).decrypt(t)
                        clash = True
                    except InvalidToken:
                        pass
            if not clash:
                return t

    shared_rings = [
        ["K0", "S0"], ["S0", "K0"], ["S0", "S1", "K0"], ["S1", "S2", "S0"], ["K0", "K1"],
        ["K1", "S0", "K0"], ["S0"], ["S2", "K1", "S1"], ["K0", "S0", "S1", "S2"],
    ]
    for under in ("K0", "S0", "S2"):
        for pt in (b"", b"shared signing half", rng.randbytes(40)):
            t = shared_token(under, pt)
            for ring in shared_rings:
                for ttl, now in ((None, NOW), (60, NOW), (60, NOW + 100)):
                    c.add("multi/shared/%s/under-%s/len%d/ttl=%s/now=%d" % (
                        "-".join(ring), under, len(pt), ttl, now),
                        [shared[n] for n in ring], t, ttl, now)
    # lenient key strings in a keyring
    for i, form in enumerate([
        K0.replace("-", "+").replace("_", "/"),
        " " + K0 + "\n",
        K0[:20] + "\n" + K0[20:],
        K0 + "==",
        K0 + "AAAA",
        K0[:-2] + ALPHABET[(ALPHABET.index(K0[-2]) | 3)] + "=",
    ]):
        c.add("multi/keyform-%d" % i, [K1, form], token_of[0])
        c.add("multi/keyform-%d/primary" % i, [form, K1], token_of[1])

    # nonascii: Python raises ValueError for a str holding non-ASCII.
    t = bases["pad2"]
    for ch in NON_ASCII:
        for p in (0, 1, 50, len(t) - 2, len(t)):
            c.add("nonascii/U+%04X-at-%d" % (ord(ch), p), [K0], c.insert(t, p, ch))
        c.add("nonascii/U+%04X-after-padding-junk" % ord(ch), [K0], t + "AAAA" + ch)
        c.add("nonascii/U+%04X-replacing-0" % ord(ch), [K0], ch + t[1:])
        c.add("nonascii/U+%04X-alone" % ord(ch), [K0], ch)
        c.add("nonascii/U+%04X-ttl" % ord(ch), [K0], t + ch, 60, NOW)

    # empty: empty and near-empty inputs.
    for s in ["", " ", "\n", "\x00", "=", "==", "===", "====", "A", "AA", "AAA", "AAAA",
              "gA", "gA=", "gA==", "gAA=", "gAAA", "gAAAAAAAAAA=", "gAAAAAAAAAAA",
              "gAAAAAAAAAAAAA==", "!", "....", "gAAAAA" + "=" * 10, "\x80",
              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]:
        c.add("empty/%r" % s, [K0], s)
        c.add("empty/%r/ttl" % s, [K0], s, 0, 0)
        c.add("empty/%r/multi" % s, [K1, K0], s)

    return c


# --- main ------------------------------------------------------------------


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pyfernet.py probe|cases|verdicts|check|keys < request.json")
    mode = sys.argv[1]
    if mode == "probe":
        import cryptography

        out = {"python": sys.version.split()[0], "cryptography": cryptography.__version__}
    elif mode == "cases":
        corpus = generate()
        cases = corpus.cases
        for case in cases:
            case["verdict"] = judge(case)
        out = {"seed": SEED, "counts": corpus.counts, "cases": cases}
    elif mode == "verdicts":
        cases = json.load(sys.stdin)
        out = [judge(case) for case in cases]
    elif mode == "check":
        out = [check_token(item) for item in json.load(sys.stdin)]
    elif mode == "keys":
        out = [check_key(item) for item in json.load(sys.stdin)]
    else:
        sys.exit("unknown mode %r" % mode)
    # One write: json.dump would make a write call per fragment.
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
