package fernet_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// The fuzz targets hold the engine to the reference model (reference_test.go)
// of Python's rules. Their seeds are the spec vectors and the differential
// test's mutation corpus; in go test they run as unit tests, and
// scripts/test runs each for a bounded time. A long run:
//
//	go test -run '^$' -fuzz '^FuzzDecrypt$' -fuzztime 10m ./fernet/

// fuzzPool is the mutation corpus' key pool, as engine keys and as the raw
// bytes the model takes.
func fuzzPool() (keys []*fernet.Key, raws [][]byte) {
	for _, k := range mutationPool(mutationRNG(mutationSeed)) {
		key, err := fernet.ParseKey(k.str)
		if err != nil {
			panic(err)
		}
		keys = append(keys, key)
		raws = append(raws, k.raw)
	}
	return keys, raws
}

// ring is 1 to 3 distinct keys of the pool, in an order that sel picks.
// sel also picks which of them verified the ring's latest token, the key
// the engine tries first when the signing halves are distinct.
func ring(sel uint16, keys []*fernet.Key, raws [][]byte) (*fernet.Keyring, [][]byte) {
	picked := rand.New(rand.NewPCG(uint64(sel), 0)).Perm(len(keys))[:1+sel%3]
	var chosen []*fernet.Key
	var refKeys [][]byte
	for _, i := range picked {
		chosen = append(chosen, keys[i])
		refKeys = append(refKeys, raws[i])
	}
	r := fernet.NewKeyring(chosen[0], chosen[1:]...)
	latest := chosen[int(sel/3)%len(chosen)]
	sealed, err := fernet.NewKeyring(latest).Encrypt([]byte("latest"))
	if err != nil {
		panic(err)
	}
	if _, err := r.Decrypt(sealed.Token); err != nil {
		panic(err)
	}
	return r, refKeys
}

func addSeeds(f *testing.F, add func(token string, i int)) {
	for i, c := range goMutationCases(mutationSeed, 400) {
		add(string(c.Token), i)
	}
	vectors := loadSpecVectors(f)
	for i, group := range [][]specVector{vectors.generate, vectors.verify, vectors.invalid} {
		for j, v := range group {
			add(v.Token, 1000+10*i+j)
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	addSeeds(f, func(token string, _ int) { f.Add(token) })
	f.Fuzz(func(t *testing.T, s string) {
		got, err := fernet.DecodePythonBase64(s)
		want, ok := refDecode(s)
		if (err == nil) != ok || (ok && !bytes.Equal(got, want)) {
			t.Fatalf("decode(%q) = %x, %v; the model says %x, ok=%v", s, got, err, want, ok)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	keys, raws := fuzzPool()
	addSeeds(f, func(token string, i int) {
		f.Add(token, uint16(i), i%2 == 0, int64(i%7)*1000-3000, int64(testNow))
	})
	f.Fuzz(func(t *testing.T, token string, sel uint16, hasTTL bool, ttl, now int64) {
		keyring, refKeys := ring(sel, keys, raws)
		var got fernet.Decrypted
		var err error
		var ttlArg *int64
		if hasTTL {
			ttlArg = &ttl
			got, err = keyring.DecryptAtTime(token, ttl, now)
		} else {
			got, err = keyring.Decrypt(token)
		}
		want := refDecrypt(refKeys, token, ttlArg, now)
		if (err == nil) != want.ok {
			t.Fatalf("verdict: engine %v, model ok=%v (token %q, ttl %v/%d, now %d)", err, want.ok, token, hasTTL, ttl, now)
		}
		if err != nil {
			if !errors.Is(err, fernet.ErrMalformed) && !errors.Is(err, fernet.ErrInvalidSignature) &&
				!errors.Is(err, fernet.ErrExpired) && !errors.Is(err, fernet.ErrFutureTimestamp) {
				t.Fatalf("an error of no known kind: %v", err)
			}
			return
		}
		if !bytes.Equal(got.Plaintext, want.plaintext) || got.Timestamp != want.timestamp || got.Primary != (want.keyIndex == 0) {
			t.Fatalf("engine %+v, model %+v", got, want)
		}
	})
}

func FuzzReEncrypt(f *testing.F) {
	keys, raws := fuzzPool()
	addSeeds(f, func(token string, i int) { f.Add(token, uint16(i)) })
	f.Fuzz(func(t *testing.T, token string, sel uint16) {
		keyring, refKeys := ring(sel, keys, raws)
		got, err := keyring.ReEncrypt(token)
		want := refDecrypt(refKeys, token, nil, 0)
		if (err == nil) != want.ok {
			t.Fatalf("verdict: engine %v, model ok=%v (token %q)", err, want.ok, token)
		}
		if err != nil {
			return
		}
		canonical := base64.URLEncoding.EncodeToString(mustDecode(t, token)) == token
		if got.Changed == (want.keyIndex == 0 && canonical) || got.KeyID != keyring.Primary().ID() {
			t.Fatalf("ReEncrypt = %+v for a token under key %d (canonical %v)", got, want.keyIndex, canonical)
		}
		again := refDecrypt(refKeys[:1], got.Token, nil, 0)
		if !again.ok || !bytes.Equal(again.plaintext, want.plaintext) || again.timestamp != want.timestamp {
			t.Fatalf("the new token opens under the primary to %+v, want %+v", again, want)
		}
	})
}

func mustDecode(t *testing.T, token string) []byte {
	data, ok := refDecode(token)
	if !ok {
		t.Fatalf("a token that decrypted does not decode: %q", token)
	}
	return data
}
