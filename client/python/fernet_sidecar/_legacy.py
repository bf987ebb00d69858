"""Legacy plaintext: a TOTP secret stored bare, the way many apps kept it
before they encrypted the column. The shapes and their rules are
fernetctl's (rotation/plaintext.go): a value counts only if it has the
shape and the backend also called it MALFORMED, so a real token (under an
unknown key, say) never does. That second rule is the caller's."""

import base64
import binascii
import string

#: base32 as pyotp and Google Authenticator use it; 40 hex characters as
#: django-otp's TOTPDevice.key.
TOTP_BASE32 = "totp-base32"
TOTP_HEX = "totp-hex"
LEGACY_SHAPES = (TOTP_BASE32, TOTP_HEX)

# 16 characters (80 bits) is the shortest base32 secret in common use; 128
# is far above the longest.
_MIN_BASE32, _MAX_BASE32 = 16, 128
_BASE32_ALPHABET = frozenset(string.ascii_letters + "234567")
_HEX_DIGITS = frozenset(string.hexdigits)
_HEX_LEN = 40
# What every Fernet token starts with (version 0x80 and the high bytes of
# its timestamp, in base64); rotation/plaintext.go has the same rule.
_TOKEN_PREFIX = "gAAAAA"


def check_shape(shape):
    """shape, if it is one of LEGACY_SHAPES; else ValueError."""
    if shape not in LEGACY_SHAPES:
        raise ValueError("legacy plaintext shape must be one of %s, not %r" % (", ".join(LEGACY_SHAPES), shape))
    return shape


def looks_like(shape, value):
    """Whether the str value has the legacy shape."""
    check_shape(shape)
    if not isinstance(value, str):
        return False
    if value.startswith(_TOKEN_PREFIX):
        # A token, truncated or damaged: its base64 can pass for base32,
        # and encrypting it as a secret would lose the real one.
        return False
    if shape == TOTP_HEX:
        return len(value) == _HEX_LEN and all(c in _HEX_DIGITS for c in value)
    return _looks_like_base32(value)


def _looks_like_base32(value):
    if not _MIN_BASE32 <= len(value) <= _MAX_BASE32:
        return False
    body = value.rstrip("=")
    if len(body) < len(value) and len(value) % 8:
        return False  # padding, when present, must be the full padding
    if not all(c in _BASE32_ALPHABET for c in body):
        return False
    if len(body) % 8 in (1, 3, 6):  # no byte string encodes to these
        return False
    try:
        base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        return False
    return True
