package fernet

import (
	"bytes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func mustKey(t testing.TB) *Key {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// signed builds a token by hand: body is everything before the HMAC, which
// key signs, so the token authenticates whatever its contents.
func signed(key *Key, body []byte) string {
	data := append(bytes.Clone(body), key.sign(nil, body)...)
	return base64.URLEncoding.EncodeToString(data)
}

// body is version, timestamp, IV and the given ciphertext.
func body(timestamp uint64, ciphertext []byte) []byte {
	b := make([]byte, ciphertextStart, ciphertextStart+len(ciphertext))
	b[0] = versionByte
	binary.BigEndian.PutUint64(b[timestampOffset:], timestamp)
	return append(b, ciphertext...)
}

func mustEncryptAt(t *testing.T, r *Keyring, plaintext string, timestamp uint64) string {
	t.Helper()
	sealed, err := r.EncryptAtTime([]byte(plaintext), timestamp)
	if err != nil {
		t.Fatal(err)
	}
	return sealed.Token
}

func TestDecryptRoundTrip(t *testing.T) {
	primary, old := mustKey(t), mustKey(t)
	current := NewKeyring(primary, old)
	previous := NewKeyring(old)

	tests := []struct {
		name        string
		token       string
		wantKeyID   string
		wantPrimary bool
	}{
		{"under the primary key", mustEncryptAt(t, current, "JBSWY3DPEHPK3PXP", 1_700_000_000), primary.ID(), true},
		{"under a decrypt-only key", mustEncryptAt(t, previous, "JBSWY3DPEHPK3PXP", 1_700_000_000), old.ID(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := current.Decrypt(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Plaintext) != "JBSWY3DPEHPK3PXP" || got.Timestamp != 1_700_000_000 ||
				got.KeyID != tt.wantKeyID || got.Primary != tt.wantPrimary {
				t.Fatalf("Decrypt = %+v, want plaintext, timestamp 1700000000, key %s, primary %v",
					got, tt.wantKeyID, tt.wantPrimary)
			}
		})
	}
}

func TestEncryptUsesNowAndPrimary(t *testing.T) {
	primary := mustKey(t)
	r := NewKeyring(primary, mustKey(t))
	sealed, err := r.Encrypt([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if sealed.KeyID != primary.ID() || !strings.HasPrefix(sealed.Token, "gAAAAA") {
		t.Fatalf("Encrypt = %+v: want the primary key id and a canonical token", sealed)
	}
	if _, err := r.DecryptAtTime(sealed.Token, 5, nowOf(t, r, sealed.Token)); err != nil {
		t.Fatalf("fresh token fails a 5 s TTL: %v", err)
	}
}

func nowOf(t *testing.T, r *Keyring, token string) int64 {
	t.Helper()
	opened, err := r.Decrypt(token)
	if err != nil {
		t.Fatal(err)
	}
	return int64(opened.Timestamp)
}

func TestDecryptFailureReasons(t *testing.T) {
	key := mustKey(t)
	r := NewKeyring(key)
	good := mustEncryptAt(t, r, "secret", 1000)
	goodBytes, _ := base64.URLEncoding.DecodeString(good)
	flippedMAC := bytes.Clone(goodBytes)
	flippedMAC[len(flippedMAC)-1] ^= 1
	// A block that decrypts, under the zero IV body() uses, to a last byte
	// of 0: never valid PKCS7, whatever the key.
	badPadding := make([]byte, 16)
	cipher.NewCBCEncrypter(key.block, make([]byte, 16)).CryptBlocks(badPadding, badPadding)

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"not base64", "gAAAA", ErrMalformed},
		{"non-ASCII", good[:10] + "é" + good[10:], ErrMalformed},
		{"wrong version", signed(key, append([]byte{0x81}, body(1000, make([]byte, 16))[1:]...)), ErrMalformed},
		{"9 bytes", base64.URLEncoding.EncodeToString(body(1000, nil)[:9]), ErrMalformed},
		{"empty ciphertext, valid HMAC", signed(key, body(1000, nil)), ErrMalformed},
		{"ciphertext not block-aligned, valid HMAC", signed(key, body(1000, make([]byte, 17))), ErrMalformed},
		{"bad padding, valid HMAC", signed(key, body(1000, badPadding)), ErrMalformed},
		{"unknown key", mustEncryptAt(t, NewKeyring(mustKey(t)), "secret", 1000), ErrInvalidSignature},
		{"tampered HMAC", base64.URLEncoding.EncodeToString(flippedMAC), ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Decrypt(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decrypt error = %v, want %v", err, tt.want)
			}
			if _, err := r.ReEncrypt(tt.token); !errors.Is(err, tt.want) {
				t.Fatalf("ReEncrypt error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecryptAtTime(t *testing.T) {
	key := mustKey(t)
	r := NewKeyring(key)
	const made = 1_000_000
	tests := []struct {
		name      string
		timestamp uint64
		ttl, now  int64
		want      error
	}{
		{"within ttl", made, 60, made + 60, nil},
		{"one second past ttl", made, 60, made + 61, ErrExpired},
		{"ttl 0 at the same second", made, 0, made, nil},
		{"ttl 0 a second later", made, 0, made + 1, ErrExpired},
		{"negative ttl", made, -1, made, ErrExpired},
		{"60 s in the future", made + 60, 10, made, nil},
		{"61 s in the future", made + 61, 10, made, ErrFutureTimestamp},
		{"largest timestamp is in the future", math.MaxUint64, math.MaxInt64, made, ErrFutureTimestamp},
		{"largest timestamp, now past 2^63", math.MaxUint64, 0, math.MaxInt64, ErrFutureTimestamp},
		{"timestamp 0, huge ttl", 0, math.MaxInt64, made, nil},
		{"timestamp 0, most negative ttl", 0, math.MinInt64, made, ErrExpired},
		{"now - ttl past 2^63, expired", 1<<63 + 59, math.MinInt64, math.MaxInt64, ErrExpired},
		{"now - ttl is 2^64-1, expired", math.MaxUint64 - 1, math.MinInt64, math.MaxInt64, ErrExpired},
		{"now - ttl past 2^63, in the future", 1<<63 + 100, math.MinInt64, 100, ErrFutureTimestamp},
		{"now far in the past", 0, 10, math.MinInt64, ErrFutureTimestamp},
		{"now just before 1970 minus skew", 0, 10, -61, ErrFutureTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := mustEncryptAt(t, r, "secret", tt.timestamp)
			got, err := r.DecryptAtTime(token, tt.ttl, tt.now)
			if !errors.Is(err, tt.want) || (err == nil && got.Timestamp != tt.timestamp) {
				t.Fatalf("DecryptAtTime(ttl %d, now %d) = %+v, %v; want %v", tt.ttl, tt.now, got, err, tt.want)
			}
			if _, err := r.Decrypt(token); err != nil {
				t.Fatalf("Decrypt without ttl must do no time checks, got %v", err)
			}
		})
	}
}

func TestForgedTokenIsInvalidSignatureWhateverItsTime(t *testing.T) {
	forged := signed(mustKey(t), body(0, make([]byte, 16)))
	_, err := NewKeyring(mustKey(t)).DecryptAtTime(forged, 1, 1_000_000)
	if !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("got %v, want ErrInvalidSignature: an unverified timestamp says nothing", err)
	}
}

func TestDecryptFallsThroughAfterPaddingFailure(t *testing.T) {
	// Two keys sharing the signing half: the first verifies the HMAC but
	// decrypts to bad padding, so MultiFernet moves on to the second.
	first := mustKey(t)
	sharedRaw := first.raw
	sharedRaw[31] ^= 0xff
	second := newKey(sharedRaw[:])
	var token string
	for {
		token = mustEncryptAt(t, NewKeyring(second), "secret", 1000)
		data, _ := base64.URLEncoding.DecodeString(token)
		if _, ok := first.decrypt(make([]byte, len(ciphertextOf(data))), data); !ok {
			break // almost always on the first try
		}
	}
	got, err := NewKeyring(first, second).Decrypt(token)
	if err != nil || string(got.Plaintext) != "secret" || got.KeyID != second.ID() || got.Primary {
		t.Fatalf("Decrypt = %+v, %v; want the second key to decrypt it", got, err)
	}
}

func TestDecryptStartsWithTheLatestVerifier(t *testing.T) {
	primary, old, older := mustKey(t), mustKey(t), mustKey(t)
	r := NewKeyring(primary, old, older)
	tokens := map[*Key]string{}
	for _, k := range []*Key{primary, old, older} {
		tokens[k] = mustEncryptAt(t, NewKeyring(k), "secret", 1000)
	}
	// Runs under one key, then switches, as a mixed workload does.
	for i, k := range []*Key{old, old, primary, older, older, old, primary, primary} {
		got, err := r.Decrypt(tokens[k])
		if err != nil || string(got.Plaintext) != "secret" || got.KeyID != k.ID() || got.Primary != (k == primary) {
			t.Fatalf("step %d: Decrypt = %+v, %v; want key %s, primary %v", i, got, err, k.ID(), k == primary)
		}
		if want := slices.Index(r.keys, k); int(r.lastVerifier.Load()) != want {
			t.Fatalf("step %d: next Decrypt starts with key %d, want %d, the latest to verify", i, r.lastVerifier.Load(), want)
		}
	}
}

func TestSharedSigningHalvesKeepPythonsOrder(t *testing.T) {
	// first and second share a signing half. A token whose ciphertext
	// has valid padding under both is first's, as Python tries keys in
	// order, even right after a token that only second decrypts.
	first := mustKey(t)
	sharedRaw := first.raw
	sharedRaw[31] ^= 0xff
	second := newKey(sharedRaw[:])
	r := NewKeyring(first, second)
	if r.distinctSigners {
		t.Fatal("distinctSigners is true for two keys with one signing half")
	}
	var onlySecond, both string
	for try := 0; try < 10_000 && (onlySecond == "" || both == ""); try++ {
		ciphertext := make([]byte, 16)
		binary.BigEndian.PutUint64(ciphertext, uint64(try))
		// An IV that makes k's padding valid (a last byte of 1) leaves
		// the other key's valid one time in about 256.
		for _, k := range []*Key{first, second} {
			data := body(1000, ciphertext)
			var decrypted [16]byte
			k.block.Decrypt(decrypted[:], ciphertext)
			data[ciphertextStart-1] = decrypted[15] ^ 1
			data = append(data, make([]byte, 32)...)
			_, firstOK := first.decrypt(make([]byte, 16), data)
			_, secondOK := second.decrypt(make([]byte, 16), data)
			switch token := signed(first, data[:len(data)-32]); {
			case firstOK && secondOK:
				both = token
			case secondOK:
				onlySecond = token
			}
		}
	}
	if onlySecond == "" || both == "" {
		t.Fatal("found no ciphertext for the test in 10000 tries")
	}
	if got, err := r.Decrypt(onlySecond); err != nil || got.KeyID != second.ID() {
		t.Fatalf("Decrypt = %+v, %v; want the second key", got, err)
	}
	if got, err := r.Decrypt(both); err != nil || got.KeyID != first.ID() {
		t.Fatalf("Decrypt = %+v, %v; want the first key, as Python", got, err)
	}
}

func TestReEncrypt(t *testing.T) {
	primary, old := mustKey(t), mustKey(t)
	r := NewKeyring(primary, old)
	// A token with no '-' or '_' reads the same in both alphabets (about
	// one in twenty-five), which would make the standard-alphabet case
	// canonical.
	underPrimary := mustEncryptAt(t, r, "secret", 1234)
	for try := 0; try < 100 && !strings.ContainsAny(underPrimary, "-_"); try++ {
		underPrimary = mustEncryptAt(t, r, "secret", 1234)
	}
	underOld := mustEncryptAt(t, NewKeyring(old), "secret", 1234)
	data, _ := base64.URLEncoding.DecodeString(underPrimary)

	tests := []struct {
		name            string
		token           string
		wantChanged     bool
		wantFromPrimary bool
	}{
		{"canonical under primary", underPrimary, false, true},
		{"under an old key", underOld, true, false},
		{"standard alphabet under primary", base64.StdEncoding.EncodeToString(data), true, true},
		{"line-wrapped under primary", underPrimary[:50] + "\n" + underPrimary[50:], true, true},
		{"trailing junk after padding", underPrimary + "junk", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ReEncrypt(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if got.Changed != tt.wantChanged || got.FromPrimary != tt.wantFromPrimary || got.KeyID != primary.ID() {
				t.Fatalf("ReEncrypt = %+v, want changed %v, from primary %v, key %s",
					got, tt.wantChanged, tt.wantFromPrimary, primary.ID())
			}
			if !got.Changed && got.Token != tt.token {
				t.Fatal("an unchanged token must come back as it was given")
			}
			opened, err := NewKeyring(primary).Decrypt(got.Token)
			if err != nil || string(opened.Plaintext) != "secret" || opened.Timestamp != 1234 {
				t.Fatalf("re-encrypted token opens to %+v, %v; want the plaintext at the original timestamp", opened, err)
			}
		})
	}
}

func TestReEncryptUsesAFreshIV(t *testing.T) {
	old := mustKey(t)
	token := mustEncryptAt(t, NewKeyring(old), "secret", 1)
	r := NewKeyring(mustKey(t), old)
	a, errA := r.ReEncrypt(token)
	b, errB := r.ReEncrypt(token)
	if errA != nil || errB != nil || a.Token == b.Token {
		t.Fatalf("two re-encryptions gave %q and %q (%v, %v): want two different tokens", a.Token, b.Token, errA, errB)
	}
}

func TestEncryptAtLargestTimestamps(t *testing.T) {
	r := NewKeyring(mustKey(t))
	for _, timestamp := range []uint64{0, 1 << 63, math.MaxUint64} {
		opened, err := r.Decrypt(mustEncryptAt(t, r, "x", timestamp))
		if err != nil || opened.Timestamp != timestamp {
			t.Fatalf("timestamp %d comes back as %d (%v)", timestamp, opened.Timestamp, err)
		}
	}
}

func TestNewKeyringDropsRepeatedKeys(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	aAgain, _ := ParseKey(a.Encode())
	r := NewKeyring(a, b, aAgain, b)
	if got := r.DecryptOnly(); len(got) != 1 || got[0] != b {
		t.Fatalf("DecryptOnly = %v, want just %v", got, b)
	}
}
