package fernet

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzDecrypt: no input panics, and whatever decrypts re-encrypts to a
// token that decrypts to the same plaintext and timestamp. The seeds run in
// every go test; explore with: go test -fuzz FuzzDecrypt ./fernet/
func FuzzDecrypt(f *testing.F) {
	raw := bytes.Repeat([]byte{7}, keySize)
	key := newKey(raw)
	sharedSigning := bytes.Clone(raw)
	sharedSigning[keySize-1] = 8
	r := NewKeyring(key, newKey(sharedSigning))
	good, err := r.EncryptAtTime([]byte("JBSWY3DPEHPK3PXP"), 1_700_000_000)
	if err != nil {
		f.Fatal(err)
	}
	data, _ := base64.URLEncoding.DecodeString(good.Token)
	for _, seed := range []string{
		good.Token,
		base64.StdEncoding.EncodeToString(data),
		good.Token[:50] + "\n" + good.Token[50:],
		good.Token + "==junk",
		good.Token[:len(good.Token)-1],
		signed(key, body(0, nil)),
		signed(key, body(1<<63, make([]byte, 16))),
		signed(key, body(5, make([]byte, 17))),
		"", "=", "gAAAAA", "\x80", "é",
	} {
		f.Add(seed, int64(60), int64(1_700_000_000))
	}
	f.Fuzz(func(t *testing.T, token string, ttl, now int64) {
		_, _ = r.DecryptAtTime(token, ttl, now)
		opened, err := r.Decrypt(token)
		if err != nil {
			return
		}
		rotated, err := r.ReEncrypt(token)
		if err != nil {
			t.Fatalf("decrypts but does not re-encrypt: %v", err)
		}
		again, err := NewKeyring(key).Decrypt(rotated.Token)
		if err != nil || !bytes.Equal(again.Plaintext, opened.Plaintext) || again.Timestamp != opened.Timestamp {
			t.Fatalf("re-encrypted token opens to %+v, %v; want %+v", again, err, opened)
		}
	})
}
