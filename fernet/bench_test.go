package fernet

import (
	"fmt"
	"testing"
)

// go test -bench . -benchmem ./fernet/
func BenchmarkKeyring(b *testing.B) {
	for _, size := range []int{32, 1024} {
		primary, old := mustKey(b), mustKey(b)
		r := NewKeyring(primary, old)
		plaintext := make([]byte, size)
		sealed, err := r.Encrypt(plaintext)
		if err != nil {
			b.Fatal(err)
		}
		underOld, err := NewKeyring(old).Encrypt(plaintext)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("Encrypt/%dB", size), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.Encrypt(plaintext); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Decrypt/%dB", size), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.Decrypt(sealed.Token); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("ReEncrypt/%dB", size), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.ReEncrypt(underOld.Token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
