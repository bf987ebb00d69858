package fernet

import (
	"fmt"
	"time"

	gofernet "github.com/fernet/fernet-go"
)

// Keyring is Python's MultiFernet: the first key encrypts, and every key
// decrypts, tried in order. It is immutable, so a Keyring can be shared by
// any number of goroutines and swapped whole when keys change.
type Keyring struct {
	keys []*Key
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
	return &Keyring{keys: keys}
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
	return r.EncryptAtTime(plaintext, uint64(time.Now().Unix()))
}

// EncryptAtTime is Fernet(primary).encrypt_at_time.
func (r *Keyring) EncryptAtTime(plaintext []byte, timestamp uint64) (Encrypted, error) {
	primary := r.Primary()
	// time.Unix(int64(t)).Unix() round-trips every uint64 bit pattern, and
	// fernet-go writes uint64(Unix()), so timestamps past 2^63 survive.
	token, err := gofernet.EncryptAndSignAtTime(plaintext, &primary.raw, time.Unix(int64(timestamp), 0))
	if err != nil {
		return Encrypted{}, fmt.Errorf("encrypt: %w", err)
	}
	return Encrypted{Token: string(token), KeyID: primary.id}, nil
}

// Decrypt is MultiFernet.decrypt(token) with no TTL: no time checks at all.
func (r *Keyring) Decrypt(token string) (Decrypted, error) {
	data, err := tokenBytes(token)
	if err != nil {
		return Decrypted{}, err
	}
	return r.open(data, nil)
}

// DecryptAtTime is MultiFernet.decrypt_at_time(token, ttl, now): the token
// must be at most ttl seconds old and at most 60 s in the future at now
// (Unix seconds). ttl may be zero or negative, as in Python.
func (r *Keyring) DecryptAtTime(token string, ttl, now int64) (Decrypted, error) {
	data, err := tokenBytes(token)
	if err != nil {
		return Decrypted{}, err
	}
	return r.open(data, &timeCheck{ttl: ttl, now: now})
}

// ReEncrypt is MultiFernet.rotate: decrypt with any key and no time check,
// then encrypt under the primary key with the original timestamp and a
// fresh IV. A canonical token already under the primary key comes back
// unchanged, so bulk jobs rewrite only what needs it.
func (r *Keyring) ReEncrypt(token string) (ReEncrypted, error) {
	data, err := tokenBytes(token)
	if err != nil {
		return ReEncrypted{}, err
	}
	opened, err := r.open(data, nil)
	if err != nil {
		return ReEncrypted{}, err
	}
	if opened.Primary && isCanonical(token, data) {
		return ReEncrypted{Token: token, KeyID: opened.KeyID, FromPrimary: true}, nil
	}
	sealed, err := r.EncryptAtTime(opened.Plaintext, opened.Timestamp)
	if err != nil {
		return ReEncrypted{}, err
	}
	return ReEncrypted{Token: sealed.Token, KeyID: sealed.KeyID, Changed: true, FromPrimary: opened.Primary}, nil
}

// open tries each key in order. The time check runs once a key has
// verified the token: the verdict is Python's (which checks time first,
// for every key), and the reason is more truthful, because the timestamp of
// a token that no key verifies cannot be trusted.
func (r *Keyring) open(data []byte, check *timeCheck) (Decrypted, error) {
	signedByUs := false
	for i, k := range r.keys {
		if !k.verifies(data) {
			continue
		}
		timestamp := timestampOf(data)
		if check != nil {
			if err := check.verify(timestamp); err != nil {
				return Decrypted{}, err
			}
		}
		plaintext, ok := k.decrypt(data)
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
