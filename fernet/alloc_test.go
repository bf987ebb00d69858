//go:build !race

// The race detector makes sync.Pool drop objects at random, so allocation
// counts mean something only without it.

package fernet

import (
	"encoding/base64"
	"testing"
)

// TestAllocations holds the hot paths to what they return: one allocation
// for a token or a plaintext, none for a token that comes back unchanged.
func TestAllocations(t *testing.T) {
	primary, old := mustKey(t), mustKey(t)
	r := NewKeyring(primary, old)
	plaintext := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	underPrimary := mustEncryptAt(t, r, string(plaintext), 1_700_000_000)
	underOld := mustEncryptAt(t, NewKeyring(old), string(plaintext), 1_700_000_000)
	data, _ := base64.URLEncoding.DecodeString(underOld)
	standard := base64.StdEncoding.EncodeToString(data)
	tests := []struct {
		name string
		max  float64
		op   func() error
	}{
		{"Encrypt", 1, func() error { _, err := r.Encrypt(plaintext); return err }},
		{"Decrypt", 1, func() error { _, err := r.Decrypt(underPrimary); return err }},
		{"Decrypt under an old key", 1, func() error { _, err := r.Decrypt(underOld); return err }},
		{"DecryptAtTime", 1, func() error { _, err := r.DecryptAtTime(underPrimary, 60, 1_700_000_010); return err }},
		{"ReEncrypt under an old key", 1, func() error { _, err := r.ReEncrypt(underOld); return err }},
		{"ReEncrypt of a standard-alphabet token", 1, func() error { _, err := r.ReEncrypt(standard); return err }},
		{"ReEncrypt, unchanged", 0, func() error { _, err := r.ReEncrypt(underPrimary); return err }},
	}
	for _, tt := range tests {
		if err := tt.op(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := testing.AllocsPerRun(200, func() { _ = tt.op() }); got > tt.max {
			t.Errorf("%s: %.1f allocations, want at most %.0f", tt.name, got, tt.max)
		}
	}
}
