// Package testkeys makes Fernet keys, tokens and key sources for tests. It
// imports fernet, so fernet's internal tests (package fernet) cannot use it;
// its external ones (package fernet_test) can.
package testkeys

import (
	"sync/atomic"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// New makes a random key, failing the test if it cannot.
func New(t testing.TB) *fernet.Key {
	t.Helper()
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Source is a server.KeyringSource whose keyring a test can replace, as a
// reload would.
type Source struct {
	ring atomic.Pointer[fernet.Keyring]
}

// NewSource serves the keyring of primary and the old keys.
func NewSource(primary *fernet.Key, old ...*fernet.Key) *Source {
	s := &Source{}
	s.Store(fernet.NewKeyring(primary, old...))
	return s
}

// Keyring is the keyring stored last.
func (s *Source) Keyring() *fernet.Keyring { return s.ring.Load() }

// Store replaces the keyring, for the calls that start after it.
func (s *Source) Store(ring *fernet.Keyring) { s.ring.Store(ring) }

// Token encrypts plaintext under key alone at timestamp, outside the
// sidecar, as an app's own Python Fernet would have.
func Token(t testing.TB, key *fernet.Key, plaintext string, timestamp uint64) string {
	t.Helper()
	sealed, err := fernet.NewKeyring(key).EncryptAtTime([]byte(plaintext), timestamp)
	if err != nil {
		t.Fatal(err)
	}
	return sealed.Token
}
