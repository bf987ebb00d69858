package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Token layout: version | timestamp | IV | AES-128-CBC ciphertext | HMAC.
const (
	versionByte     = 0x80
	timestampOffset = 1
	ivOffset        = timestampOffset + 8
	ciphertextStart = ivOffset + aes.BlockSize
	// minTokenSize is a token holding one block of ciphertext: the
	// encryption of an empty plaintext is one block of padding.
	minTokenSize = ciphertextStart + aes.BlockSize + sha256.Size
	// maxClockSkew is how far in the future a token may be when a TTL is checked.
	maxClockSkew = 60
)

// The errors a token can fail with. Callers tell them apart with errors.Is;
// the error's text adds detail but never the token, a plaintext or a key.
var (
	// ErrMalformed: not a Fernet token, or its ciphertext does not decrypt
	// under the key that signed it.
	ErrMalformed = errors.New("malformed token")
	// ErrInvalidSignature: no loaded key verifies the token.
	ErrInvalidSignature = errors.New("no loaded key verifies the token")
	// ErrExpired: the token is older than the TTL.
	ErrExpired = errors.New("token expired")
	// ErrFutureTimestamp: the token's timestamp is more than 60 s ahead.
	ErrFutureTimestamp = errors.New("token timestamp is in the future")
)

// tokenBytes decodes token the way Python does and rejects, as malformed,
// every shape that no key can decrypt. Python reaches the same verdict for
// them later (its slices come out empty or not block-aligned), so checking
// up front changes no verdict and keeps short inputs away from the crypto.
func tokenBytes(token string) ([]byte, error) {
	data, err := decodePythonBase64(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	case data[0] != versionByte:
		return nil, fmt.Errorf("%w: version byte is 0x%02x, want 0x80", ErrMalformed, data[0])
	case len(data) < minTokenSize:
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d of the shortest token", ErrMalformed, len(data), minTokenSize)
	case (len(data)-ciphertextStart-sha256.Size)%aes.BlockSize != 0:
		return nil, fmt.Errorf("%w: ciphertext is not a whole number of AES blocks", ErrMalformed)
	}
	return data, nil
}

func timestampOf(data []byte) uint64 {
	return binary.BigEndian.Uint64(data[timestampOffset:ivOffset])
}

// verifies reports whether k's HMAC matches the token, in constant time.
func (k *Key) verifies(data []byte) bool {
	signed := len(data) - sha256.Size
	var mac [sha256.Size]byte
	return hmac.Equal(k.sign(mac[:0], data[:signed]), data[signed:])
}

// decrypt returns the plaintext of a token that k verifies, or false when
// its PKCS7 padding is invalid.
func (k *Key) decrypt(data []byte) ([]byte, bool) {
	iv := data[ivOffset:ciphertextStart]
	ciphertext := data[ciphertextStart : len(data)-sha256.Size]
	plaintext := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(k.block, iv).CryptBlocks(plaintext, ciphertext)
	return unpad(plaintext)
}

// unpad strips PKCS7 padding. The padding of a token that has already been
// authenticated is not secret, so this need not be constant-time.
func unpad(p []byte) ([]byte, bool) {
	n := int(p[len(p)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, false
	}
	for _, b := range p[len(p)-n:] {
		if int(b) != n {
			return nil, false
		}
	}
	return p[:len(p)-n], true
}

// timeCheck is Python's decrypt_at_time(token, ttl, current_time) check.
type timeCheck struct {
	ttl int64
	now int64
}

// verify applies Python's rules with its unbounded integers: expired when
// timestamp + ttl < now, rejected when now + 60 < timestamp. The arithmetic
// is exact for every timestamp up to 2^64-1 and every int64 ttl and now.
func (c timeCheck) verify(timestamp uint64) error {
	if c.expired(timestamp) {
		return fmt.Errorf("%w: made at %d, ttl %ds, now %d", ErrExpired, timestamp, c.ttl, c.now)
	}
	if c.future(timestamp) {
		return fmt.Errorf("%w: made at %d, now %d, allowed skew %ds", ErrFutureTimestamp, timestamp, c.now, maxClockSkew)
	}
	return nil
}

// expired reports timestamp < now - ttl, with now - ttl taken exactly.
func (c timeCheck) expired(timestamp uint64) bool {
	limit := c.now - c.ttl
	overflowed := (c.now^c.ttl)&(c.now^limit) < 0
	switch {
	case overflowed && c.ttl < 0:
		// now - ttl lies in [2^63, 2^64-1]; uint64 wrap-around gives it exactly.
		return timestamp < uint64(c.now)-uint64(c.ttl)
	case overflowed:
		return false // now - ttl < -2^63
	case limit <= 0:
		return false
	default:
		return timestamp < uint64(limit)
	}
}

// future reports now + 60 < timestamp, with now + 60 taken exactly.
func (c timeCheck) future(timestamp uint64) bool {
	if c.now < -maxClockSkew {
		return true // now + 60 < 0 <= timestamp
	}
	// now + 60 lies in [0, 2^63+59]; uint64 wrap-around gives it exactly.
	return uint64(c.now)+maxClockSkew < timestamp
}

// isCanonical reports whether token is exactly the padded URL-safe base64
// of data, the only form this sidecar makes.
func isCanonical(token string, data []byte) bool {
	if len(token) != base64.URLEncoding.EncodedLen(len(data)) {
		return false
	}
	return base64.URLEncoding.EncodeToString(data) == token
}
