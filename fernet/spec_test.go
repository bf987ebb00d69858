package fernet_test

// The official Fernet spec vectors (generate.json, verify.json,
// invalid.json), as shipped in fernet-go's module directory.
//
// fernet-go's copies add vectors with ttl_sec <= 0, which in fernet-go mean
// "no TTL check". Python has no such convention: decrypt_at_time with ttl -1
// means "expired one second after creation". So a vector with ttl_sec <= 0
// is checked both ways: as fernet-go means it (Decrypt, no time checks), and
// as given (DecryptAtTime with that ttl), where Python is the judge.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

type specVector struct {
	Desc   string    `json:"desc"`
	Token  string    `json:"token"`
	Now    time.Time `json:"now"`
	IV     []int     `json:"iv"`
	Src    string    `json:"src"`
	Secret string    `json:"secret"`
	TTLSec int64     `json:"ttl_sec"`
}

type specVectors struct {
	generate, verify, invalid []specVector
}

var (
	specOnce   sync.Once
	specDir    string
	specDirErr error
)

// loadSpecVectors reads the three spec files from fernet-go's module
// directory, as `go list -m` run from the repository reports it.
func loadSpecVectors(t testing.TB) specVectors {
	t.Helper()
	goBin := testenv.LookPath(t, "go")
	root := testenv.RepoRoot(t)
	specOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Dir}}", "github.com/fernet/fernet-go")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			specDirErr = fmt.Errorf("go list -m github.com/fernet/fernet-go: %v\n%s", err, stderr.Bytes())
			return
		}
		specDir = strings.TrimSpace(string(out))
		if specDir == "" {
			specDirErr = fmt.Errorf("go list -m github.com/fernet/fernet-go: no module directory (run go mod download)")
		}
	})
	if specDirErr != nil {
		t.Fatal(specDirErr)
	}
	load := func(name string, min int) []specVector {
		data, err := os.ReadFile(filepath.Join(specDir, name))
		if err != nil {
			t.Fatalf("spec vectors: %v", err)
		}
		var vs []specVector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatalf("spec vectors %s: %v", name, err)
		}
		if len(vs) < min {
			t.Fatalf("spec vectors %s: %d vectors, want at least %d", name, len(vs), min)
		}
		return vs
	}
	return specVectors{
		generate: load("generate.json", 1),
		verify:   load("verify.json", 1),
		invalid:  load("invalid.json", 8),
	}
}

func specRing(t *testing.T, v specVector) *fernet.Keyring {
	t.Helper()
	k, err := fernet.ParseKey(v.Secret)
	if err != nil {
		t.Fatalf("ParseKey(%q): %v", v.Secret, err)
	}
	return fernet.NewKeyring(k)
}

func specTimestamp(v specVector) uint64 { return uint64(v.Now.Unix()) }

// TestSpecGenerate: the spec's token, made with a fixed IV, decrypts to src
// at the vector's time; our own encryption of src (random IV) has the same
// shape and decrypts to src.
func TestSpecGenerate(t *testing.T) {
	vs := loadSpecVectors(t)
	for i, v := range vs.generate {
		ring := specRing(t, v)
		ts := specTimestamp(v)
		name := fmt.Sprintf("generate[%d] (src %q, now %s)", i, v.Src, v.Now.Format(time.RFC3339))

		// The test's own encoder reproduces the spec token from its IV, so
		// the tokens it builds elsewhere are real Fernet tokens.
		raw, err := base64.URLEncoding.DecodeString(v.Secret)
		if err != nil {
			t.Fatalf("%s: secret: %v", name, err)
		}
		iv := make([]byte, len(v.IV))
		for j, b := range v.IV {
			iv[j] = byte(b)
		}
		if got := base64.URLEncoding.EncodeToString(newTestKey("spec", raw).seal(ts, iv, []byte(v.Src))); got != v.Token {
			t.Errorf("%s: the test's encoder makes %q, the spec %q", name, got, v.Token)
		}

		d, err := ring.Decrypt(v.Token)
		if err != nil || string(d.Plaintext) != v.Src || d.Timestamp != ts || !d.Primary {
			t.Errorf("%s: Decrypt = %q at %d (primary %v), %v; want %q at %d", name, d.Plaintext, d.Timestamp, d.Primary, err, v.Src, ts)
		}
		if d, err := ring.DecryptAtTime(v.Token, 60, v.Now.Unix()); err != nil || string(d.Plaintext) != v.Src {
			t.Errorf("%s: DecryptAtTime(ttl 60, now) = %q, %v; want %q", name, d.Plaintext, err, v.Src)
		}

		e, err := ring.EncryptAtTime([]byte(v.Src), ts)
		if err != nil {
			t.Fatalf("%s: EncryptAtTime: %v", name, err)
		}
		if len(e.Token) != len(v.Token) || e.Token[:12] != v.Token[:12] {
			t.Errorf("%s: EncryptAtTime = %q, want the shape of %q (same length, same version and timestamp)", name, e.Token, v.Token)
		}
		if d, err := ring.Decrypt(e.Token); err != nil || string(d.Plaintext) != v.Src || d.Timestamp != ts {
			t.Errorf("%s: Decrypt(EncryptAtTime) = %q at %d, %v", name, d.Plaintext, d.Timestamp, err)
		}
	}
}

// TestSpecVerify: every verify vector decrypts to src at its time.
func TestSpecVerify(t *testing.T) {
	vs := loadSpecVectors(t)
	for i, v := range vs.verify {
		ring := specRing(t, v)
		name := fmt.Sprintf("verify[%d] (ttl %d, now %s)", i, v.TTLSec, v.Now.Format(time.RFC3339))
		if v.TTLSec > 0 {
			d, err := ring.DecryptAtTime(v.Token, v.TTLSec, v.Now.Unix())
			if err != nil || string(d.Plaintext) != v.Src || d.Timestamp > uint64(v.Now.Unix()) {
				t.Errorf("%s: DecryptAtTime = %q at %d, %v; want %q", name, d.Plaintext, d.Timestamp, err, v.Src)
			}
			continue
		}
		// fernet-go's "no TTL": Python's decrypt(token) without ttl.
		if d, err := ring.Decrypt(v.Token); err != nil || string(d.Plaintext) != v.Src {
			t.Errorf("%s: Decrypt (ttl <= 0 is fernet-go's \"no TTL\") = %q, %v; want %q", name, d.Plaintext, err, v.Src)
		}
	}
}

// TestSpecInvalid: no invalid vector decrypts at its time (nor, when its
// ttl_sec is fernet-go's "no TTL", without time checks).
func TestSpecInvalid(t *testing.T) {
	vs := loadSpecVectors(t)
	for i, v := range vs.invalid {
		ring := specRing(t, v)
		name := fmt.Sprintf("invalid[%d] %q (ttl %d, now %s)", i, v.Desc, v.TTLSec, v.Now.Format(time.RFC3339))
		if d, err := ring.DecryptAtTime(v.Token, v.TTLSec, v.Now.Unix()); err == nil {
			t.Errorf("%s: DecryptAtTime = %q, want an error", name, d.Plaintext)
		}
		if v.TTLSec <= 0 {
			if d, err := ring.Decrypt(v.Token); err == nil {
				t.Errorf("%s: Decrypt = %q, want an error", name, d.Plaintext)
			}
		}
		if _, err := ring.ReEncrypt(v.Token); err == nil && v.TTLSec <= 0 {
			t.Errorf("%s: ReEncrypt succeeded, want an error", name)
		}
	}
}

// TestSpecPythonAgrees feeds every spec vector to Python, with its ttl and
// without one, and requires the engine to agree with Python's verdicts
// (including rotate), Python to agree with the spec where the spec speaks
// Python's language (ttl_sec > 0), and Python to decrypt the spec's and
// our own generate tokens.
func TestSpecPythonAgrees(t *testing.T) {
	vs := loadSpecVectors(t)
	o := pythonOracle(t)
	type expectation struct {
		valid, known bool
		src          string
	}
	var (
		cases  []pyCase
		expect []expectation
	)
	add := func(kind string, i int, v specVector, withTTL bool, e expectation) {
		c := pyCase{
			Name:  fmt.Sprintf("spec/%s[%d] %s", kind, i, v.Desc),
			Keys:  []string{v.Secret},
			Token: []byte(v.Token),
			Now:   v.Now.Unix(),
		}
		if withTTL {
			ttl := v.TTLSec
			c.TTL = &ttl
			c.Name += fmt.Sprintf(" ttl=%d", ttl)
		} else {
			c.Name += " ttl=None"
		}
		cases = append(cases, c)
		expect = append(expect, e)
	}
	for i, v := range vs.generate {
		v.TTLSec = 60
		add("generate", i, v, true, expectation{true, true, v.Src})
		add("generate", i, v, false, expectation{true, true, v.Src})
	}
	for i, v := range vs.verify {
		// With ttl_sec <= 0 fernet-go skips the time checks and Python does
		// not; only the engine's agreement with Python is required then.
		add("verify", i, v, true, expectation{true, v.TTLSec > 0, v.Src})
		add("verify", i, v, false, expectation{true, true, v.Src})
	}
	for i, v := range vs.invalid {
		add("invalid", i, v, true, expectation{false, true, ""})
		// Without a ttl, only the vectors that fail for a reason other than
		// time are known to be invalid.
		add("invalid", i, v, false, expectation{false, v.TTLSec <= 0, ""})
	}

	o.judge(t, cases)
	for i := range cases {
		e, v := expect[i], *cases[i].Verdict
		if !e.known {
			if strings.HasPrefix(cases[i].Name, "spec/verify") {
				t.Logf("%s: fernet-go reads ttl_sec <= 0 as \"no TTL\"; Python's decrypt_at_time says ok=%v (%s), and the engine must agree with Python",
					cases[i].Name, v.OK, v.Error)
			}
			continue
		}
		if v.OK != e.valid || (v.OK && string(v.Plaintext) != e.src) {
			t.Errorf("%s: Python says ok=%v %q (%s), the spec says ok=%v %q", cases[i].Name, v.OK, v.Plaintext, v.Error, e.valid, e.src)
		}
	}
	// Python must decrypt the spec's generate tokens, and ours; the check
	// runs with that of the tokens ReEncrypt makes from the cases.
	var wants []checkWant
	for i, v := range vs.generate {
		ring := specRing(t, v)
		e, err := ring.EncryptAtTime([]byte(v.Src), specTimestamp(v))
		if err != nil {
			t.Fatal(err)
		}
		for what, token := range map[string]string{"spec token": v.Token, "EncryptAtTime": e.Token} {
			wants = append(wants, checkWant{
				what: fmt.Sprintf("generate[%d] %s", i, what), keys: []string{v.Secret},
				token: token, plaintext: []byte(v.Src), timestamp: specTimestamp(v),
			})
		}
	}
	compareAll(t, o, cases, wants...)
}
