package fernet

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	urlsafe := base64.URLEncoding.EncodeToString(raw)
	std := base64.StdEncoding.EncodeToString(raw)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"url-safe base64", urlsafe, ""},
		{"standard base64", std, ""},
		{"trailing newline from a file", urlsafe + "\n", ""},
		{"extra padding", urlsafe + "==", ""},
		{"hex lower", hex.EncodeToString(raw), ""},
		{"hex upper with newline", strings.ToUpper(hex.EncodeToString(raw)) + "\n", ""},
		{"empty", "", "decodes to 0 bytes"},
		{"missing padding", strings.TrimRight(urlsafe, "="), "incorrect padding"},
		{"too short", base64.URLEncoding.EncodeToString(raw[:31]), "decodes to 31 bytes"},
		{"too long", base64.URLEncoding.EncodeToString(append(raw, 1)), "decodes to 33 bytes"},
		{"63 hex characters", hex.EncodeToString(raw)[:63], "not a Fernet key"},
		{"non-ASCII", "é" + urlsafe, "non-ASCII"},
		{"hex behind a non-breaking space", "\u00a0" + hex.EncodeToString(raw), "non-ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKey error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(tt.in)) && strings.TrimSpace(tt.in) != "" {
					t.Fatalf("error %q echoes the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if got := key.Encode(); got != urlsafe {
				t.Fatalf("key decodes to %s, want %s", got, urlsafe)
			}
		})
	}
}

func TestKeyIDIsFirst8BytesOfSHA256(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.URLEncoding.DecodeString(key.Encode())
	sum := sha256.Sum256(raw)
	if want := hex.EncodeToString(sum[:8]); key.ID() != want {
		t.Fatalf("ID() = %s, want %s", key.ID(), want)
	}
}

func TestKeyFormattingShowsOnlyTheID(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%s"} {
		out := fmt.Sprintf(verb, key)
		if strings.Contains(out, key.Encode()) || !strings.Contains(out, key.ID()) {
			t.Errorf("Sprintf(%q, key) = %q: want the id and not the key", verb, out)
		}
	}
}
