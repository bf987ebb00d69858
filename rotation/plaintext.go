package rotation

import (
	"encoding/base32"
	"strings"
)

// Legacy plaintext is a TOTP secret stored bare, the way many apps kept it
// before they encrypted the column: base32 (RFC 4648 alphabet, as pyotp and
// Google Authenticator use), upper or lower case, optionally '='-padded.
// 16 characters (80 bits) is the shortest secret in common use; 128 is far
// above the longest. A value counts only if the sidecar also calls it
// MALFORMED, so a real token (under an unknown key, say) never does.
const (
	minSecretLen = 16
	maxSecretLen = 128
)

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
