package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/fernet-sidecar/fernet-sidecar/reasons"
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
// Each carries its reason (reasons.Of).
var (
	// ErrMalformed: not a Fernet token, or its ciphertext does not decrypt
	// under the key that signed it.
	ErrMalformed error = reasons.New(reasons.Malformed, "malformed token")
	// ErrInvalidSignature: no loaded key verifies the token.
	ErrInvalidSignature error = reasons.New(reasons.InvalidSignature, "no loaded key verifies the token")
	// ErrExpired: the token is older than the TTL.
	ErrExpired error = reasons.New(reasons.Expired, "token expired")
	// ErrFutureTimestamp: the token's timestamp is more than 60 s ahead.
	ErrFutureTimestamp error = reasons.New(reasons.FutureTimestamp, "token timestamp is in the future")
)

// tokenBytes decodes token the way Python does, appending to dst, and
// rejects, as malformed, every shape that no key can decrypt. Python
// reaches the same verdict for them later (its slices come out empty or not
// block-aligned), so checking up front changes no verdict and keeps short
// inputs away from the crypto. canonical is as appendPythonBase64 says.
func tokenBytes(dst []byte, token string) (data []byte, canonical bool, err error) {
	data, canonical, err = appendPythonBase64(dst, token)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	data = data[len(dst):]
	switch {
	case len(data) == 0:
		return nil, false, fmt.Errorf("%w: empty", ErrMalformed)
	case data[0] != versionByte:
		return nil, false, fmt.Errorf("%w: version byte is 0x%02x, want 0x80", ErrMalformed, data[0])
	case len(data) < minTokenSize:
		return nil, false, fmt.Errorf("%w: %d bytes, shorter than the %d of the shortest token", ErrMalformed, len(data), minTokenSize)
	case (len(data)-ciphertextStart-sha256.Size)%aes.BlockSize != 0:
		return nil, false, fmt.Errorf("%w: ciphertext is not a whole number of AES blocks", ErrMalformed)
	}
	return data, canonical, nil
}

func timestampOf(data []byte) uint64 {
	return binary.BigEndian.Uint64(data[timestampOffset:ivOffset])
}

// ciphertextOf is the part of a token that tokenBytes accepted between
// the IV and the HMAC.
func ciphertextOf(data []byte) []byte {
	return data[ciphertextStart : len(data)-sha256.Size]
}

// decrypt decrypts a token that k verifies into dst, which must be as long
// as its ciphertext and must not overlap it: the ciphertext stays intact
// for the next key when the padding fails. It returns the plaintext, a
// prefix of dst, or false when the PKCS7 padding is invalid.
func (k *Key) decrypt(dst, data []byte) ([]byte, bool) {
	cbcDecrypt(k.block, data[ivOffset:ciphertextStart], dst, ciphertextOf(data))
	return unpad(dst)
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

// sealedSize is the length of the raw token of an n-byte plaintext.
func sealedSize(n int) int {
	return ciphertextStart + n/aes.BlockSize*aes.BlockSize + aes.BlockSize + sha256.Size
}

// seal writes the raw token of plaintext into raw, whose length must be
// sealedSize(len(plaintext)). st is one of k's states.
func (k *Key) seal(st *keyState, raw, plaintext []byte, timestamp uint64) error {
	body := ciphertextOf(raw)
	n := copy(body, plaintext)
	pad := byte(len(body) - n)
	for i := n; i < len(body); i++ {
		body[i] = pad
	}
	return k.sealPadded(st, raw, timestamp)
}

// sealPadded finishes a raw token whose ciphertext part already holds the
// padded plaintext: header, fresh IV, encryption in place, HMAC. st is one
// of k's states.
func (k *Key) sealPadded(st *keyState, raw []byte, timestamp uint64) error {
	raw[0] = versionByte
	binary.BigEndian.PutUint64(raw[timestampOffset:ivOffset], timestamp)
	iv := raw[ivOffset:ciphertextStart]
	if _, err := rand.Read(iv); err != nil {
		return fmt.Errorf("encrypt: random IV: %w", err)
	}
	cbcEncrypt(k.block, iv, ciphertextOf(raw))
	signed := len(raw) - sha256.Size
	// The HMAC lands in place: raw has room for it right after what it signs.
	st.sign(raw[:signed], raw[:signed])
	return nil
}

// cbcEncrypt and cbcDecrypt are CBC over the key's own cipher.Block:
// cipher.NewCBCEncrypter and NewCBCDecrypter allocate on every call, and on
// amd64 the standard library runs this same loop (crypto/internal/fips140/aes
// has no CBC assembly there).
func cbcEncrypt(b cipher.Block, iv, buf []byte) {
	prev := iv
	for i := 0; i < len(buf); i += aes.BlockSize {
		blk := buf[i : i+aes.BlockSize]
		subtle.XORBytes(blk, blk, prev)
		b.Encrypt(blk, blk)
		prev = blk
	}
}

// cbcDecrypt decrypts src into dst; they must not overlap.
func cbcDecrypt(b cipher.Block, iv, dst, src []byte) {
	prev := iv
	for i := 0; i < len(src); i += aes.BlockSize {
		out := dst[i : i+aes.BlockSize]
		b.Decrypt(out, src[i:i+aes.BlockSize])
		subtle.XORBytes(out, out, prev)
		prev = src[i : i+aes.BlockSize]
	}
}

// encodeToken is the canonical token of raw: padded URL-safe base64. The
// string shares the bytes it was encoded into, which nothing else holds,
// saving a copy of every token made.
func encodeToken(raw []byte) string {
	out := make([]byte, base64.URLEncoding.EncodedLen(len(raw)))
	encodeURLBase64(out, raw)
	return unsafe.String(unsafe.SliceData(out), len(out))
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
