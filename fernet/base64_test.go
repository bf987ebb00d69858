package fernet

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"strings"
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

// base64Shapes are inputs at the edges between the canonical fast path
// and the lenient decoder: every one must decode as the lenient decoder
// (Python) does, whichever path takes it.
func base64Shapes() []string {
	raw := []byte("\xfb\xff\xbf\x00\x10\x83Fernet tokens, padded and not")
	var shapes []string
	for n := 0; n <= len(raw); n++ {
		url := base64.URLEncoding.EncodeToString(raw[:n])
		std := base64.StdEncoding.EncodeToString(raw[:n])
		bare := strings.TrimRight(url, "=")
		shapes = append(shapes, url, std, bare, url+"=", url+"==", url+"\n", " "+url, url+"AAAA", url+url, "="+url)
		if len(url) >= 4 {
			shapes = append(shapes, url[:len(url)-1], url[:2]+"="+url[3:], url[:4]+"\n"+url[4:], url[:3]+"é"+url[3:])
			// Non-zero trailing bits: same bytes, not canonical.
			if strings.HasSuffix(url, "==") {
				shapes = append(shapes, url[:len(url)-3]+"R==", url[:len(url)-3]+"_==")
			} else if strings.HasSuffix(url, "=") {
				shapes = append(shapes, url[:len(url)-2]+"B=", url[:len(url)-2]+"_=")
			}
		}
	}
	return append(shapes, "", "=", "==", "===", "====", "A===", "AA==", "AAA=", "AAAA", "AA=A", "A=AA",
		"AAAAAAA=", "AAAAAA==", "AAAAAAAA", "AAAAAAAAAAA=", "-_-_", "+/+/", "AAAA\x80AAA", "\xff\xff\xff\xff")
}

// checkFastPath checks one input: if the canonical fast path takes it, the
// bytes are the lenient decoder's and canonical means exactly that
// re-encoding gives the input back.
func checkFastPath(t *testing.T, s string) {
	t.Helper()
	prefix := []byte("prefix")
	fast, canonical, ok := appendCanonicalBase64(bytes.Clone(prefix), s)
	lenient, err := appendLenientBase64(bytes.Clone(prefix), s)
	if !ok {
		if !bytes.Equal(fast, prefix) {
			t.Fatalf("%q: fast path refused it but changed dst to %q", s, fast)
		}
		return
	}
	if err != nil || !bytes.Equal(fast, lenient) {
		t.Fatalf("%q: fast path %x, lenient %x (%v)", s, fast, lenient, err)
	}
	if want := base64.URLEncoding.EncodeToString(fast[len(prefix):]) == s; canonical != want {
		t.Fatalf("%q: canonical %v, want %v", s, canonical, want)
	}
	got, gotCanonical, err := appendPythonBase64(nil, s)
	if err != nil || !bytes.Equal(got, fast[len(prefix):]) || gotCanonical != canonical {
		t.Fatalf("%q: appendPythonBase64 = %x, %v, %v", s, got, gotCanonical, err)
	}
}

func TestCanonicalBase64MatchesLenient(t *testing.T) {
	for _, s := range base64Shapes() {
		checkFastPath(t, s)
	}
	// Every canonical encoding takes the fast path and is seen as canonical.
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		raw := randomBytes(rng, n)
		s := base64.URLEncoding.EncodeToString(raw)
		got, canonical, ok := appendCanonicalBase64(nil, s)
		if !ok || !canonical || !bytes.Equal(got, raw) {
			t.Fatalf("%d bytes: canonical input gives %x, canonical %v, ok %v", n, got, canonical, ok)
		}
	}
}

// FuzzCanonicalBase64: the fast path agrees with the lenient decoder on
// any input. Explore with: go test -fuzz FuzzCanonicalBase64 ./fernet/
func FuzzCanonicalBase64(f *testing.F) {
	for _, s := range base64Shapes() {
		f.Add(s)
	}
	f.Fuzz(checkFastPath)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestEncodeURLBase64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 300 {
		raw := randomBytes(rng, n)
		want := base64.URLEncoding.EncodeToString(raw)
		got := make([]byte, len(want))
		encodeURLBase64(got, raw)
		if string(got) != want {
			t.Fatalf("%d bytes: %q, want %q", n, got, want)
		}
	}
}
