package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"

	gofernet "github.com/fernet/fernet-go"
)

const keySize = 32

// Key is one Fernet key with the state derived from it built once: its id,
// the AES block of its encryption half and a pool of working states, each
// with an HMAC over its signing half. Use it through a pointer; it must not
// be copied.
type Key struct {
	raw    gofernet.Key
	id     string
	block  cipher.Block
	states sync.Pool // of *keyState
}

// keyState is what one operation with a key works in: an HMAC over the
// signing half, room for one sum and a buffer for the raw bytes of a
// token. Pooled per key, so an operation takes one from the pool and
// allocates only what it returns.
type keyState struct {
	mac hash.Hash
	sum [sha256.Size]byte
	buf []byte
}

// maxPooledBuffer keeps a rare huge token from pinning memory in the pool.
const maxPooledBuffer = 256 << 10

func (k *Key) state() *keyState { return k.states.Get().(*keyState) }

func (k *Key) release(st *keyState) {
	if cap(st.buf) > maxPooledBuffer {
		st.buf = nil
	}
	k.states.Put(st)
}

// buffer returns st's buffer with length n; its contents are left over
// from earlier operations.
func (st *keyState) buffer(n int) []byte {
	if cap(st.buf) < n {
		st.buf = make([]byte, n)
	}
	return st.buf[:n]
}

// sign appends HMAC-SHA256(signing key, data) to dst.
func (st *keyState) sign(dst, data []byte) []byte {
	st.mac.Reset()
	st.mac.Write(data)
	return st.mac.Sum(dst)
}

// verifies reports whether the HMAC matches the token, in constant time.
func (st *keyState) verifies(data []byte) bool {
	signed := len(data) - sha256.Size
	return hmac.Equal(st.sign(st.sum[:0], data[:signed]), data[signed:])
}

// ParseKey accepts what Python's Fernet(key) accepts (lenient URL-safe or
// standard base64 of 32 bytes, whitespace and extra padding allowed) and,
// as our own extension, 64 hex characters. Errors never contain the key.
func ParseKey(s string) (*Key, error) {
	// Only ASCII whitespace: Python rejects a str with any non-ASCII in it.
	if trimmed := strings.Trim(s, " \t\n\v\f\r"); len(trimmed) == 2*keySize && isHex(trimmed) {
		// 64 hex characters decode to 48 bytes as base64, which Python
		// rejects, so reading them as hex takes nothing away.
		raw, _ := hex.DecodeString(trimmed)
		return newKey(raw), nil
	}
	raw, err := decodePythonBase64(s)
	if err != nil {
		return nil, fmt.Errorf("not a Fernet key: %w", err)
	}
	if len(raw) != keySize {
		return nil, fmt.Errorf("not a Fernet key: decodes to %d bytes, want %d (url-safe base64 of 32 bytes, or 64 hex characters)", len(raw), keySize)
	}
	return newKey(raw), nil
}

// KeyFromBytes makes a key of 32 raw bytes, for keys derived rather than
// configured.
func KeyFromBytes(raw []byte) (*Key, error) {
	if len(raw) != keySize {
		return nil, fmt.Errorf("a Fernet key is %d bytes, not %d", keySize, len(raw))
	}
	return newKey(raw), nil
}

// GenerateKey makes a new random key.
func GenerateKey() (*Key, error) {
	var raw gofernet.Key
	if err := raw.Generate(); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return newKey(raw[:]), nil
}

func newKey(raw []byte) *Key {
	k := &Key{}
	copy(k.raw[:], raw)
	sum := sha256.Sum256(k.raw[:])
	k.id = hex.EncodeToString(sum[:8])
	// The key is 32 bytes, so the AES-128 key is always 16: no error.
	k.block, _ = aes.NewCipher(k.raw[keySize/2:])
	signing := k.signingHalf()
	k.states.New = func() any { return &keyState{mac: hmac.New(sha256.New, signing)} }
	return k
}

// ID is lowercase hex of the first 8 bytes of SHA-256 over the raw key: the
// only thing about a key that may leave the process.
func (k *Key) ID() string { return k.id }

// String keeps key material out of logs and errors that format a Key.
func (k *Key) String() string { return "fernet key " + k.id }

// Encode returns the key as Python's Fernet.generate_key() writes it.
// It is for writing a key out on purpose (genkey, the dev key file) only.
func (k *Key) Encode() string { return k.raw.Encode() }

// Equal reports whether both keys hold the same bytes.
func (k *Key) Equal(other *Key) bool { return hmac.Equal(k.raw[:], other.raw[:]) }

// signingHalf is the HMAC key: Fernet signs with the first 16 bytes and
// encrypts with the last 16.
func (k *Key) signingHalf() []byte { return k.raw[:keySize/2] }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
