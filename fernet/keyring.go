package fernet

import (
	"crypto/subtle"
	"fmt"
	"sync/atomic"
)

// Keyring is Python's MultiFernet: the first key encrypts, and every key
// decrypts, tried in order. Its keys never change, so a Keyring can be
// shared by any number of goroutines and swapped whole when keys change.
type Keyring struct {
	keys []*Key
	// distinctSigners is true when no two keys share a signing half. A
	// token then verifies under one key at most (short of an HMAC-SHA256
	// collision), so the order in which the keys are tried cannot change
	// a result, and open may start anywhere.
	distinctSigners bool
	// lastVerifier is the index of the key that verified the latest token.
	// Tokens come in runs under one key: during a rotation most are under
	// an old key, and starting with it saves the primary's HMAC on each.
	lastVerifier atomic.Int32
}

// NewKeyring makes a keyring with primary first, then decryptOnly in order.
// A key given twice is kept only at its first place: trying it again could
// not verify anything new.
func NewKeyring(primary *Key, decryptOnly ...*Key) *Keyring {
	keys := []*Key{primary}
next:
	for _, candidate := range decryptOnly {
		for _, kept := range keys {
			if kept.Equal(candidate) {
				continue next
			}
		}
		keys = append(keys, candidate)
	}
	return &Keyring{keys: keys, distinctSigners: distinctSigners(keys)}
}

func distinctSigners(keys []*Key) bool {
	for i, a := range keys {
		for _, b := range keys[:i] {
			if subtle.ConstantTimeCompare(a.signingHalf(), b.signingHalf()) == 1 {
				return false
			}
		}
	}
	return true
}

// Primary is the key that encrypts.
func (r *Keyring) Primary() *Key { return r.keys[0] }

// DecryptOnly are the other keys, in the order they are tried.
func (r *Keyring) DecryptOnly() []*Key { return r.keys[1:] }

// Encrypted is a new token and the id of the key that made it.
type Encrypted struct {
	Token string
	KeyID string
}

// Decrypted is what a token holds and which key verified it.
type Decrypted struct {
	Plaintext []byte
	// Timestamp is the token's own creation time, in Unix seconds.
	Timestamp uint64
	KeyID     string
	// Primary is true when the primary key verified the token.
	Primary bool
}

// ReEncrypted is a token moved to the primary key.
type ReEncrypted struct {
	Token string
	// KeyID is the primary key's id.
	KeyID string
	// Changed is false when the token came back as it was given.
	Changed bool
	// FromPrimary is true when the primary key verified the original token.
	FromPrimary bool
}

// Encrypt is Fernet(primary).encrypt: the current time and a fresh IV.
func (r *Keyring) Encrypt(plaintext []byte) (Encrypted, error) {
	return r.EncryptAtTime(plaintext, uint64(unixNow()))
}

// EncryptAtTime is Fernet(primary).encrypt_at_time.
func (r *Keyring) EncryptAtTime(plaintext []byte, timestamp uint64) (Encrypted, error) {
	primary := r.Primary()
	st := primary.state()
	defer primary.release(st)
	raw := st.buffer(sealedSize(len(plaintext)))
	if err := primary.seal(st, raw, plaintext, timestamp); err != nil {
		return Encrypted{}, err
	}
	return Encrypted{Token: encodeToken(raw), KeyID: primary.id}, nil
}

// Decrypt is MultiFernet.decrypt(token) with no TTL: no time checks at all.
func (r *Keyring) Decrypt(token string) (Decrypted, error) {
	return r.decrypt(token, nil)
}

// DecryptAtTime is MultiFernet.decrypt_at_time(token, ttl, now): the token
// must be at most ttl seconds old and at most 60 s in the future at now
// (Unix seconds). ttl may be zero or negative, as in Python.
func (r *Keyring) DecryptAtTime(token string, ttl, now int64) (Decrypted, error) {
	return r.decrypt(token, &timeCheck{ttl: ttl, now: now})
}

func (r *Keyring) decrypt(token string, check *timeCheck) (Decrypted, error) {
	// The primary's state serves the decoding too: most tokens are under
	// the primary, and then one state is all the call takes from a pool.
	primary := r.Primary()
	st := primary.state()
	defer primary.release(st)
	data, _, err := tokenBytes(st.buffer(decodedSizeMax(token))[:0], token)
	if err != nil {
		return Decrypted{}, err
	}
	// The plaintext is the one allocation: it is the caller's to keep.
	return r.open(st, data, check, make([]byte, len(ciphertextOf(data))))
}

// ReEncrypt is MultiFernet.rotate: decrypt with any key and no time check,
// then encrypt under the primary key with the original timestamp and a
// fresh IV. A canonical token already under the primary key comes back
// unchanged, so bulk jobs rewrite only what needs it.
func (r *Keyring) ReEncrypt(token string) (ReEncrypted, error) {
	primary := r.Primary()
	st := primary.state()
	defer primary.release(st)
	buf := st.buffer(2 * decodedSizeMax(token))
	data, canonical, err := tokenBytes(buf[:0], token)
	if err != nil {
		return ReEncrypted{}, err
	}
	// The new token is as long as the old one, and it is built right after
	// it: the old one's plaintext is decrypted straight into its place.
	fresh := buf[len(data) : 2*len(data)]
	opened, err := r.open(st, data, nil, ciphertextOf(fresh))
	if err != nil {
		return ReEncrypted{}, err
	}
	if opened.Primary && canonical {
		return ReEncrypted{Token: token, KeyID: opened.KeyID, FromPrimary: true}, nil
	}
	// What open decrypted is the padded plaintext, and valid PKCS7 padding
	// is the only padding of its length: it is exactly what encrypting the
	// plaintext would pad it to.
	if err := primary.sealPadded(st, fresh, opened.Timestamp); err != nil {
		return ReEncrypted{}, err
	}
	return ReEncrypted{Token: encodeToken(fresh), KeyID: primary.id, Changed: true, FromPrimary: opened.Primary}, nil
}

// decodedSizeMax bounds what token decodes to, whichever decoder reads it.
func decodedSizeMax(token string) int { return (len(token) + 3) / 4 * 3 }

// open finds the key that verifies the token and decrypts it with that key,
// with Python's verdict: MultiFernet tries each key in order, and moves on
// when a key verifies a token whose padding is invalid. When the signing
// halves are distinct, open starts with the key that verified the latest
// token; otherwise it keeps Python's order. The time check runs once a key
// has verified the token: the verdict is Python's (which checks time first,
// for every key), and the reason is more truthful, because the timestamp of
// a token that no key verifies cannot be trusted. The plaintext is
// decrypted into dst, which must be as long as the token's ciphertext.
// primarySt is a state of the primary key, which the caller holds.
func (r *Keyring) open(primarySt *keyState, data []byte, check *timeCheck, dst []byte) (Decrypted, error) {
	first := 0
	if r.distinctSigners {
		first = int(r.lastVerifier.Load())
	}
	signedByUs := false
	for n := range r.keys {
		i := (first + n) % len(r.keys)
		k := r.keys[i]
		var verified bool
		if i == 0 {
			verified = primarySt.verifies(data)
		} else {
			st := k.state()
			verified = st.verifies(data)
			k.release(st)
		}
		if !verified {
			continue
		}
		if r.distinctSigners && i != first {
			r.lastVerifier.Store(int32(i))
		}
		timestamp := timestampOf(data)
		if check != nil {
			if err := check.verify(timestamp); err != nil {
				return Decrypted{}, err
			}
		}
		plaintext, ok := k.decrypt(dst, data)
		if !ok {
			// Python moves on to the next key here; two keys can share a
			// signing half.
			signedByUs = true
			continue
		}
		return Decrypted{Plaintext: plaintext, Timestamp: timestamp, KeyID: k.id, Primary: i == 0}, nil
	}
	if signedByUs {
		return Decrypted{}, fmt.Errorf("%w: a loaded key verifies it but its padding is invalid", ErrMalformed)
	}
	return Decrypted{}, ErrInvalidSignature
}
