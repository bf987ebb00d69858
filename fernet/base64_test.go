package fernet

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// The expected values are what Debian's Python 3.11 base64.urlsafe_b64decode
// returns; the differential test checks many more against Python itself.
func TestDecodePythonBase64(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantHex string
		wantErr bool
	}{
		{"empty", "", "", false},
		{"padded", "YQ==", "61", false},
		{"missing padding", "YQ", "", true},
		{"one data character", "Y", "", true},
		{"five data characters", "YWJjZ", "", true},
		{"extra padding", "YQ===", "61", false},
		{"whitespace everywhere", "Y Q = =", "61", false},
		{"newlines", "YQ\n==\n", "61", false},
		{"stops after first padding group", "YQ==YQ==", "61", false},
		{"stops after one pad", "YWI=x", "6162", false},
		{"non-zero trailing bits", "YR==", "61", false},
		{"url-safe alphabet", "-_-_", "fbffbf", false},
		{"standard alphabet", "+/+/", "fbffbf", false},
		{"mixed alphabets", "-/+_", "fbffbf", false},
		{"junk characters dropped", "Y!Q.=\x00=", "61", false},
		{"pad before a quad starts is ignored", "=YWJj", "616263", false},
		{"one pad inside a quad is ignored", "YW=Jj", "616263", false},
		{"pad at position 1 is ignored", "Y=Q==", "61", false},
		{"non-ASCII", "YQé==", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePythonBase64(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("decodePythonBase64(%q) = %x, want an error", tt.in, got)
				}
				return
			}
			want, _ := hex.DecodeString(tt.wantHex)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("decodePythonBase64(%q) = %x, %v; want %x", tt.in, got, err, want)
			}
		})
	}
}
