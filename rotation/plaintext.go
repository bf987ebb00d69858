package rotation

import (
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// Legacy plaintext is a TOTP secret stored bare, the way many apps kept it
// before they encrypted the column. A value counts only if the sidecar also
// calls it MALFORMED, so a real token (under an unknown key, say) never
// does.

// PlaintextShape is the shape of the legacy plaintext secrets a column
// may hold.
type PlaintextShape string

// The shapes.
const (
	// NoPlaintext: no value counts as a legacy plaintext.
	NoPlaintext PlaintextShape = ""
	// Base32: RFC 4648 base32, as pyotp and Google Authenticator use,
	// upper or lower case, optionally '='-padded.
	Base32 PlaintextShape = "base32"
	// TOTPHex: hex, as django-otp's TOTPDevice.key holds it (40 hex
	// characters by default, at most 80).
	TOTPHex PlaintextShape = "totp-hex"
)

// ParsePlaintextShape reads a --legacy-plaintext value.
func ParsePlaintextShape(s string) (PlaintextShape, error) {
	switch shape := PlaintextShape(s); shape {
	case Base32, TOTPHex:
		return shape, nil
	}
	return NoPlaintext, fmt.Errorf("legacy plaintext shape %q: want %s or %s", s, Base32, TOTPHex)
}

// tokenPrefix is what every Fernet token starts with: version 0x80 and
// the high bytes of its timestamp, in base64. client/python's _legacy.py
// has the same rule.
const tokenPrefix = "gAAAAA"

// matches reports whether v has the shape. A value with a token's prefix
// never does: a token cut short (by a column too narrow, say) can be made
// only of base32 characters, and encrypting it as a secret would bury it.
func (s PlaintextShape) matches(v string) bool {
	if strings.HasPrefix(v, tokenPrefix) {
		return false
	}
	switch s {
	case Base32:
		return looksLikeSecret(v)
	case TOTPHex:
		return looksLikeHexSecret(v)
	}
	return false
}

// 16 base32 characters (80 bits) is the shortest secret in common use; 128
// is far above the longest.
const (
	minSecretLen = 16
	maxSecretLen = 128
)

// django-otp's hex keys: 8 bytes at least (shorter is no secret), 40 at
// most (its field holds 80 characters), whole bytes.
const (
	minHexSecretLen = 16
	maxHexSecretLen = 80
)

// looksLikeHexSecret reports whether s has the shape of a bare hex secret.
func looksLikeHexSecret(s string) bool {
	if len(s) < minHexSecretLen || len(s) > maxHexSecretLen || len(s)%2 != 0 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

var base32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// looksLikeSecret reports whether s has the shape of a bare base32 secret.
func looksLikeSecret(s string) bool {
	if len(s) < minSecretLen || len(s) > maxSecretLen {
		return false
	}
	body := strings.TrimRight(s, "=")
	if pad := len(s) - len(body); pad > 0 && len(s)%8 != 0 {
		return false // padding, when present, must be the full base32 padding
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	// No byte string encodes to 1, 3 or 6 characters mod 8 (Go's decoder
	// without padding does not check this itself).
	switch len(body) % 8 {
	case 1, 3, 6:
		return false
	}
	_, err := base32NoPad.DecodeString(strings.ToUpper(body))
	return err == nil
}
