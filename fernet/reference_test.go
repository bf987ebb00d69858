package fernet_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"math/big"
)

// The reference model: Python's cryptography.fernet (38.0.4) rules written
// out again, as plainly as possible and without the engine's code, so the
// fuzzers can hold the engine to it on inputs Python never sees in CI.

// refDecode is base64.urlsafe_b64decode(str): binascii.a2b_base64 in
// CPython 3.11, non-strict.
func refDecode(s string) ([]byte, bool) {
	for _, r := range []byte(s) {
		if r > 127 {
			return nil, false // str.encode("ascii") raises
		}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out, quad []byte
	pads := 0
	flush := func() {
		var n uint32
		for i := 0; i < 4; i++ {
			n <<= 6
			if i < len(quad) {
				n |= uint32(quad[i])
			}
		}
		full := []byte{byte(n >> 16), byte(n >> 8), byte(n)}
		out = append(out, full[:len(quad)-1]...)
		quad = nil
	}
	for _, c := range []byte(s) {
		switch c {
		case '-':
			c = '+'
		case '_':
			c = '/'
		}
		if c == '=' {
			if len(quad) >= 2 {
				pads++
				if len(quad)+pads >= 4 {
					flush()
					return out, true
				}
			}
			continue
		}
		v := -1
		for i := 0; i < len(alphabet); i++ {
			if alphabet[i] == c {
				v = i
			}
		}
		if v < 0 {
			continue
		}
		pads = 0
		quad = append(quad, byte(v))
		if len(quad) == 4 {
			flush()
		}
	}
	return out, len(quad) == 0
}

// pySlice is Python's data[from:to] with to possibly negative.
func pySlice(data []byte, from, to int) []byte {
	if to < 0 {
		to += len(data)
	}
	to = max(0, min(to, len(data)))
	from = max(0, min(from, len(data)))
	if from >= to {
		return nil
	}
	return data[from:to]
}

type refVerdict struct {
	ok        bool
	plaintext []byte
	timestamp uint64
	keyIndex  int
}

// refDecrypt is MultiFernet(keys).decrypt_at_time(token, ttl, now), or
// .decrypt(token) when ttl is nil, with keys as 32 raw bytes each.
func refDecrypt(keys [][]byte, token string, ttl *int64, now int64) refVerdict {
	data, ok := refDecode(token)
	if !ok || len(data) == 0 || data[0] != 0x80 || len(data) < 9 {
		return refVerdict{}
	}
	timestamp := new(big.Int).SetBytes(data[1:9])
	if ttl != nil {
		nowBig, ttlBig := big.NewInt(now), big.NewInt(*ttl)
		if new(big.Int).Add(timestamp, ttlBig).Cmp(nowBig) < 0 {
			return refVerdict{}
		}
		if new(big.Int).Add(nowBig, big.NewInt(60)).Cmp(timestamp) < 0 {
			return refVerdict{}
		}
	}
	for i, key := range keys {
		mac := hmac.New(sha256.New, key[:16])
		mac.Write(pySlice(data, 0, -32))
		if !hmac.Equal(mac.Sum(nil), pySlice(data, len(data)-32, len(data))) {
			continue
		}
		iv, ciphertext := pySlice(data, 9, 25), pySlice(data, 25, -32)
		if len(ciphertext)%16 != 0 || len(iv) != 16 {
			continue
		}
		block, _ := aes.NewCipher(key[16:])
		padded := make([]byte, len(ciphertext))
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(padded, ciphertext)
		if len(padded) == 0 {
			continue
		}
		n := int(padded[len(padded)-1])
		if n < 1 || n > 16 {
			continue
		}
		valid := true
		for _, b := range padded[len(padded)-n:] {
			valid = valid && int(b) == n
		}
		if !valid {
			continue
		}
		return refVerdict{ok: true, plaintext: padded[:len(padded)-n], timestamp: timestamp.Uint64(), keyIndex: i}
	}
	return refVerdict{}
}
