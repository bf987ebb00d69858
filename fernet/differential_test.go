package fernet_test

// Differential tests: Python's cryptography.fernet (Debian's
// python3-cryptography, run by /usr/bin/python3) is the reference, and every
// verdict of the engine is compared with Python's on the same input.
//
// The oracle is testdata/pyfernet.py. Each test starts it once per mode it
// needs and sends every case in one batch:
//
//   - cases:    Python generates a fixed-seed corpus of decrypt cases with
//     its own verdicts (TestDifferentialPythonCorpus).
//   - verdicts: Go generates seeded random mutations and Python judges them
//     (TestDifferentialGoMutations, and the spec vectors in spec_test.go).
//   - check:    Python decrypts tokens the engine made (Encrypt,
//     EncryptAtTime, ReEncrypt) and says whether they are canonical.
//   - keys:     Python says which key strings Fernet(key) accepts
//     (TestDifferentialParseKey).
//
// Without /usr/bin/python3 and its cryptography package the tests skip, or
// fail under FERNET_SIDECAR_FULL=1 (see internal/testenv).

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// pythonInterpreter is Debian's Python, which has python3-cryptography. The
// python3 on PATH may be another one without it.
const pythonInterpreter = testenv.DebianPython

// testNow is the "current time" of generated cases, in Unix seconds.
const testNow = 1700000000

// maxReported bounds the mismatches reported one by one per test.
const maxReported = 40

// --- the oracle ----------------------------------------------------------

type oracle struct {
	python, script string
}

// pythonOracle finds the interpreter and makes sure it can import
// cryptography.fernet; either missing is a missing prerequisite.
func pythonOracle(t *testing.T) oracle {
	t.Helper()
	python := testenv.LookPath(t, pythonInterpreter)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c",
		"import sys, cryptography, cryptography.fernet; print(sys.version.split()[0], cryptography.__version__)").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		testenv.Missing(t, fmt.Sprintf("the cryptography package for %s (%v: %s; apt-get install python3-cryptography)",
			python, err, lines[len(lines)-1]))
	}
	t.Logf("oracle: Python %s", bytes.TrimSpace(out))
	return oracle{
		python: python,
		script: filepath.Join(testenv.RepoRoot(t), "fernet", "testdata", "pyfernet.py"),
	}
}

// run starts pyfernet.py once in mode, sends in as JSON (if not nil) and
// decodes its answer into out. Any failure of the script fails the test.
func (o oracle) run(t *testing.T, mode string, in, out any) {
	t.Helper()
	var stdin []byte
	if in != nil {
		var err error
		if stdin, err = json.Marshal(in); err != nil {
			t.Fatalf("pyfernet.py %s: encoding the request: %v", mode, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.python, o.script, mode)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s %s: %v\nstderr:\n%s", o.python, o.script, mode, err, stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("pyfernet.py %s: decoding the answer: %v\nstderr:\n%s", mode, err, stderr.Bytes())
	}
	t.Logf("pyfernet.py %s: %d bytes in, %d bytes out, %v", mode, len(stdin), stdout.Len(), time.Since(start).Round(time.Millisecond))
}

// judge has Python give its verdict on each case, in place.
func (o oracle) judge(t *testing.T, cases []pyCase) {
	t.Helper()
	var verdicts []pyVerdict
	o.run(t, "verdicts", cases, &verdicts)
	if len(verdicts) != len(cases) {
		t.Fatalf("verdicts: sent %d cases, got %d verdicts", len(cases), len(verdicts))
	}
	for i := range cases {
		cases[i].Verdict = &verdicts[i]
	}
}

// pyCase is one decrypt case: keys as given to Fernet(), the token string's
// bytes (any Go string, even non-ASCII), ttl (nil: plain decrypt, no time
// checks) and now. Python fills in Verdict.
type pyCase struct {
	Name  string   `json:"name"`
	Keys  []string `json:"keys"`
	Token []byte   `json:"token_b64"`
	TTL   *int64   `json:"ttl"`
	Now   int64    `json:"now"`
	// How the token was made, for Go-generated cases.
	Mutation string     `json:"mutation,omitempty"`
	Verdict  *pyVerdict `json:"verdict,omitempty"`
}

type pyVerdict struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	// KeyIndex is the first key that decrypts the token on its own, or -1.
	KeyIndex  int     `json:"key_index"`
	Plaintext []byte  `json:"plaintext_b64"`
	Timestamp uint64  `json:"timestamp"`
	Rotate    pyOpen  `json:"rotate"`
	Facts     pyFacts `json:"facts"`
}

// pyOpen is what rotate or check made of a token.
type pyOpen struct {
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	KeyIndex int    `json:"key_index"`
	// Token is the rotated token (rotate only).
	Token     string `json:"token"`
	Plaintext []byte `json:"plaintext_b64"`
	Timestamp uint64 `json:"timestamp"`
	// Canonical: the token string is urlsafe_b64encode of its bytes (check only).
	Canonical bool `json:"canonical"`
}

// pyFacts are computed by the script, not by the library: they explain a
// verdict and decide which of the engine's errors fits it.
type pyFacts struct {
	Decoded    bool    `json:"decoded"`
	Canonical  bool    `json:"canonical"`
	DecodedLen int     `json:"decoded_len"`
	Version    int     `json:"version"`
	Timestamp  *uint64 `json:"timestamp"`
	HMACIndex  int     `json:"hmac_index"`
	Expired    bool    `json:"expired"`
	Future     bool    `json:"future"`
}

type pyCheckItem struct {
	Keys  []string `json:"keys"`
	Token []byte   `json:"token_b64"`
}

// checkWant is what Python must make of a token the engine made.
type checkWant struct {
	what      string
	keys      []string
	token     string
	plaintext []byte
	timestamp uint64
	// timestampMax, if not 0, makes the timestamp a range (Encrypt).
	timestampMax uint64
	keyIndex     int
}

// checkTokens sends every token to Python's check mode at once and
// requires Python to decrypt each to the wanted plaintext and timestamp
// under the wanted key, and the token to be canonical.
func checkTokens(t *testing.T, o oracle, wants []checkWant) {
	t.Helper()
	items := make([]pyCheckItem, len(wants))
	for i, w := range wants {
		items[i] = pyCheckItem{Keys: w.keys, Token: []byte(w.token)}
	}
	var got []pyOpen
	o.run(t, "check", items, &got)
	if len(got) != len(wants) {
		t.Fatalf("check: sent %d tokens, got %d answers", len(wants), len(got))
	}
	var r reporter
	for i, w := range wants {
		g := got[i]
		var problems []string
		switch {
		case !g.OK:
			problems = append(problems, "Python cannot decrypt it: "+g.Error)
		default:
			if !bytes.Equal(g.Plaintext, w.plaintext) {
				problems = append(problems, fmt.Sprintf("Python plaintext %q, want %q", clip(g.Plaintext), clip(w.plaintext)))
			}
			if w.timestampMax == 0 && g.Timestamp != w.timestamp {
				problems = append(problems, fmt.Sprintf("Python timestamp %d, want %d", g.Timestamp, w.timestamp))
			}
			if w.timestampMax != 0 && (g.Timestamp < w.timestamp || g.Timestamp > w.timestampMax) {
				problems = append(problems, fmt.Sprintf("Python timestamp %d, want within [%d, %d]", g.Timestamp, w.timestamp, w.timestampMax))
			}
			if g.KeyIndex != w.keyIndex {
				problems = append(problems, fmt.Sprintf("Python decrypts it with key %d, want key %d", g.KeyIndex, w.keyIndex))
			}
		}
		if !g.Canonical {
			problems = append(problems, "not canonical (not urlsafe_b64encode of its bytes)")
		}
		if len(problems) > 0 {
			r.add(t, fmt.Sprintf("check %d (%s): token %q keys %q:\n\t%s", i, w.what, w.token, w.keys, strings.Join(problems, "\n\t")))
		}
	}
	r.done(t, fmt.Sprintf("%d engine-made tokens checked by Python", len(wants)))
}

// reporter reports the first maxReported mismatches and counts the rest.
type reporter struct{ n int }

func (r *reporter) add(t *testing.T, msg string) {
	t.Helper()
	r.n++
	if r.n <= maxReported {
		t.Error(msg)
	}
}

func (r *reporter) done(t *testing.T, what string) {
	t.Helper()
	if r.n > maxReported {
		t.Errorf("... and %d more mismatches (%d in all)", r.n-maxReported, r.n)
	}
	t.Logf("%s: %d mismatches", what, r.n)
}

// --- comparing one case ---------------------------------------------------

// caseResult carries what comparing a case left for Python to check.
type caseResult struct {
	problems []string
	// reEncrypted is the token ReEncrypt returned, if it succeeded.
	reEncrypted *checkWant
	// errorKind is why the token is invalid ("" if it is valid).
	errorKind string
}

// parsedKeys holds ParseKey's result for every key string of a corpus,
// parsed once, and one Keyring for every list of keys that all parse. Cases
// share them the way a server's requests do: the *fernet.Key values (and
// their pooled HMAC states), and each Keyring's memory of the key that
// verified the latest token, which cases on other goroutines keep moving.
type parsedKeys struct {
	keys     map[string]parsedKey
	keyrings map[string]*fernet.Keyring // by keyListID
}

type parsedKey struct {
	key *fernet.Key
	err error
}

func keyListID(keys []string) string { return strings.Join(keys, "\x00") }

func parseAllKeys(cases []pyCase) parsedKeys {
	p := parsedKeys{keys: map[string]parsedKey{}, keyrings: map[string]*fernet.Keyring{}}
	for _, c := range cases {
		var keys []*fernet.Key
		for _, s := range c.Keys {
			parsed, ok := p.keys[s]
			if !ok {
				parsed.key, parsed.err = fernet.ParseKey(s)
				p.keys[s] = parsed
			}
			keys = append(keys, parsed.key)
			if parsed.err != nil {
				keys = nil
				break
			}
		}
		if id := keyListID(c.Keys); len(keys) > 0 && p.keyrings[id] == nil {
			p.keyrings[id] = fernet.NewKeyring(keys[0], keys[1:]...)
		}
	}
	return p
}

// leaks reports what of the token or keys err's text quotes: the engine's
// errors must never carry them.
func leaks(err error, token string, keys []string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if t := strings.TrimSpace(token); len(t) >= 16 && strings.Contains(msg, t) {
		return "the token"
	}
	for i, k := range keys {
		if strings.Contains(msg, strings.TrimSpace(k)) || strings.Contains(msg, strings.TrimRight(strings.TrimSpace(k), "=")) {
			return fmt.Sprintf("keys[%d]", i)
		}
	}
	return ""
}

// compareCase runs the engine on c and compares with Python's verdict.
func compareCase(c pyCase, parsed parsedKeys) caseResult {
	var res caseResult
	fail := func(format string, args ...any) {
		res.problems = append(res.problems, fmt.Sprintf(format, args...))
	}
	v := c.Verdict
	if v == nil {
		fail("no Python verdict")
		return res
	}
	keys := make([]*fernet.Key, len(c.Keys))
	for i, s := range c.Keys {
		if err := parsed.keys[s].err; err != nil {
			fail("ParseKey(keys[%d]) = %v, but Python's Fernet() accepts it", i, err)
			return res
		}
		keys[i] = parsed.keys[s].key
	}
	ring := parsed.keyrings[keyListID(c.Keys)]
	token := string(c.Token)

	// Decrypt / DecryptAtTime against decrypt / decrypt_at_time.
	var (
		d   fernet.Decrypted
		err error
	)
	if c.TTL == nil {
		d, err = ring.Decrypt(token)
	} else {
		d, err = ring.DecryptAtTime(token, *c.TTL, c.Now)
	}
	if what := leaks(err, token, c.Keys); what != "" {
		fail("decrypt: the error quotes %s: %v", what, err)
	}
	switch {
	case v.OK && err != nil:
		fail("decrypt: Python ok (key %d, plaintext %q, timestamp %d), Go error: %v", v.KeyIndex, clip(v.Plaintext), v.Timestamp, err)
	case !v.OK && err == nil:
		fail("decrypt: Python invalid (%s), Go ok (key %s, plaintext %q, timestamp %d)", v.Error, d.KeyID, clip(d.Plaintext), d.Timestamp)
	case v.OK:
		if !bytes.Equal(d.Plaintext, v.Plaintext) {
			fail("decrypt: plaintext: Python %q, Go %q", clip(v.Plaintext), clip(d.Plaintext))
		}
		if d.Timestamp != v.Timestamp {
			fail("decrypt: timestamp: Python %d, Go %d", v.Timestamp, d.Timestamp)
		}
		if v.KeyIndex < 0 || v.KeyIndex >= len(keys) {
			fail("decrypt: Python key index %d out of range", v.KeyIndex)
			break
		}
		if want := keys[v.KeyIndex].ID(); d.KeyID != want {
			fail("decrypt: KeyID %s, want %s (key %d, the first Python decrypts it with)", d.KeyID, want, v.KeyIndex)
		}
		if want := keys[v.KeyIndex].Equal(keys[0]); d.Primary != want {
			fail("decrypt: Primary %v, want %v (Python key %d)", d.Primary, want, v.KeyIndex)
		}
	default:
		why, want := expectedError(c, v.Facts)
		res.errorKind = why
		if !errors.Is(err, want) {
			fail("decrypt: both invalid, but Go's error %q is not %q, which the facts call for (%s: %s)", err, want, why, factsString(v.Facts))
		}
	}

	// ReEncrypt against rotate.
	rot := v.Rotate
	re, err := ring.ReEncrypt(token)
	if what := leaks(err, token, c.Keys); what != "" {
		fail("ReEncrypt: the error quotes %s: %v", what, err)
	}
	switch {
	case rot.OK && err != nil:
		fail("ReEncrypt: Python's rotate ok (key %d), Go error: %v", rot.KeyIndex, err)
	case !rot.OK && err == nil:
		fail("ReEncrypt: Python's rotate fails (%s), Go ok (from primary %v, changed %v)", rot.Error, re.FromPrimary, re.Changed)
	case rot.OK:
		if re.KeyID != keys[0].ID() {
			fail("ReEncrypt: KeyID %s, want the primary's %s", re.KeyID, keys[0].ID())
		}
		fromPrimary := rot.KeyIndex >= 0 && keys[rot.KeyIndex].Equal(keys[0])
		if re.FromPrimary != fromPrimary {
			fail("ReEncrypt: FromPrimary %v, but Python's first key to decrypt it is %d", re.FromPrimary, rot.KeyIndex)
		}
		if wantChanged := !(fromPrimary && v.Facts.Canonical); re.Changed != wantChanged {
			fail("ReEncrypt: Changed %v, want %v (from primary %v, canonical %v)", re.Changed, wantChanged, fromPrimary, v.Facts.Canonical)
		}
		if !re.Changed && re.Token != token {
			fail("ReEncrypt: not Changed, but the token differs: %q", re.Token)
		}
		if re.Changed && re.Token == token {
			fail("ReEncrypt: Changed, but the token came back as it was")
		}
		res.reEncrypted = &checkWant{
			what:      "ReEncrypt of " + c.Name,
			keys:      c.Keys,
			token:     re.Token,
			plaintext: rot.Plaintext,
			timestamp: rot.Timestamp,
			keyIndex:  0,
		}
		// Python's own rotated token must decrypt in Go, under the primary.
		d, err := ring.Decrypt(rot.Token)
		switch {
		case err != nil:
			fail("Decrypt(Python's rotated token %q): %v", rot.Token, err)
		case !bytes.Equal(d.Plaintext, rot.Plaintext) || d.Timestamp != rot.Timestamp || !d.Primary:
			fail("Decrypt(Python's rotated token %q) = %q at %d (primary %v), want %q at %d from the primary",
				rot.Token, clip(d.Plaintext), d.Timestamp, d.Primary, clip(rot.Plaintext), rot.Timestamp)
		}
	}
	if rot.OK && v.Facts.Timestamp != nil && rot.Timestamp != *v.Facts.Timestamp {
		fail("oracle: rotate kept timestamp %d, the token has %d", rot.Timestamp, *v.Facts.Timestamp)
	}
	return res
}

// expectedError is the engine's error for a token Python rejects, from the
// facts, and a short reason: a token that no key can decrypt because of its
// shape is malformed; otherwise the signature is checked first, then the
// time, then the padding.
func expectedError(c pyCase, f pyFacts) (reason string, want error) {
	const minTokenLen = 1 + 8 + aes.BlockSize + aes.BlockSize + sha256.Size
	const overhead = 1 + 8 + aes.BlockSize + sha256.Size
	switch {
	case !f.Decoded:
		return "malformed: base64 or non-ASCII", fernet.ErrMalformed
	case f.DecodedLen == 0, f.Version != 0x80:
		return "malformed: empty or version byte", fernet.ErrMalformed
	case f.DecodedLen < minTokenLen, (f.DecodedLen-overhead)%aes.BlockSize != 0:
		return "malformed: length", fernet.ErrMalformed
	case f.HMACIndex < 0:
		return "invalid signature", fernet.ErrInvalidSignature
	case c.TTL != nil && f.Expired:
		return "expired", fernet.ErrExpired
	case c.TTL != nil && f.Future:
		return "future timestamp", fernet.ErrFutureTimestamp
	default:
		return "malformed: padding under every key that signed it", fernet.ErrMalformed
	}
}

func factsString(f pyFacts) string {
	ts := "none"
	if f.Timestamp != nil {
		ts = fmt.Sprint(*f.Timestamp)
	}
	return fmt.Sprintf("decoded=%v len=%d version=0x%02x timestamp=%s hmac_key=%d expired=%v future=%v",
		f.Decoded, f.DecodedLen, f.Version&0xff, ts, f.HMACIndex, f.Expired, f.Future)
}

func describeCase(i int, c pyCase) string {
	ttl := "None"
	if c.TTL != nil {
		ttl = fmt.Sprint(*c.TTL)
	}
	s := fmt.Sprintf("case %d %s", i, c.Name)
	if c.Mutation != "" {
		s += "\n\tmutation: " + c.Mutation
	}
	s += fmt.Sprintf("\n\tkeys %q\n\ttoken %q\n\tttl %s now %d", c.Keys, c.Token, ttl, c.Now)
	if c.Verdict != nil {
		s += "\n\tfacts: " + factsString(c.Verdict.Facts)
	}
	return s
}

// compareAll compares every case and then has Python check every token
// ReEncrypt made, along with extra tokens, in one run of the check mode.
// It returns how many invalid cases called for each error.
//
// Cases run on several goroutines that share parsed keys, so that under
// -race the engine's shared state (keys, their HMAC pools) is exercised
// the way a server uses it; they are reported in order.
func compareAll(t *testing.T, o oracle, cases []pyCase, extra ...checkWant) map[string]int {
	t.Helper()
	var (
		r       reporter
		wants   = append([]checkWant(nil), extra...)
		ok      int
		kinds   = map[string]int{}
		parsed  = parseAllKeys(cases)
		results = make([]caseResult, len(cases))
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(cases); i = int(next.Add(1) - 1) {
				results[i] = compareCase(cases[i], parsed)
			}
		}()
	}
	wg.Wait()
	for i, c := range cases {
		res := results[i]
		if res.errorKind != "" {
			kinds[res.errorKind]++
		}
		if len(res.problems) > 0 {
			r.add(t, describeCase(i, c)+"\n\t"+strings.Join(res.problems, "\n\t"))
		}
		if res.reEncrypted != nil {
			wants = append(wants, *res.reEncrypted)
		}
		if c.Verdict != nil && c.Verdict.OK {
			ok++
		}
	}
	r.done(t, fmt.Sprintf("%d cases compared (%d valid in Python, %d invalid)", len(cases), ok, len(cases)-ok))
	logCounts(t, "invalid cases by expected error", kinds)
	if len(wants) > 0 {
		checkTokens(t, o, wants)
	}
	return kinds
}

// countsByCategory counts cases by the part of the name before the first "/".
func countsByCategory(cases []pyCase) map[string]int {
	m := map[string]int{}
	for _, c := range cases {
		cat, _, _ := strings.Cut(c.Name, "/")
		m[cat]++
	}
	return m
}

func logCounts(t *testing.T, what string, counts map[string]int) {
	t.Helper()
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, counts[n])
	}
	t.Logf("%s:%s", what, b.String())
}

// requireCorpus fails the test if a corpus is too small or lopsided to mean
// anything, so that a broken generator cannot pass silently.
func requireCorpus(t *testing.T, cases []pyCase, atLeast int, categories map[string]int) {
	t.Helper()
	if len(cases) < atLeast {
		t.Fatalf("only %d cases, want at least %d: is the generator broken?", len(cases), atLeast)
	}
	counts := countsByCategory(cases)
	logCounts(t, "cases by category", counts)
	for cat, n := range categories {
		if counts[cat] < n {
			t.Errorf("category %q has %d cases, want at least %d", cat, counts[cat], n)
		}
	}
	var ok, invalid, laterKey int
	for _, c := range cases {
		switch {
		case c.Verdict == nil:
		case c.Verdict.OK:
			ok++
			if c.Verdict.KeyIndex > 0 {
				laterKey++
			}
		default:
			invalid++
		}
	}
	if ok < len(cases)/20 || invalid < len(cases)/20 || laterKey == 0 {
		t.Errorf("lopsided verdicts: %d valid (%d under a later key), %d invalid: is the oracle broken?", ok, laterKey, invalid)
	}
}

// --- TestDifferentialPythonCorpus -----------------------------------------

// TestDifferentialPythonCorpus compares the engine with Python on the
// corpus pyfernet.py generates: lenient base64, truncations, mutations,
// re-signed tokens, time limits, MultiFernet and non-ASCII input.
func TestDifferentialPythonCorpus(t *testing.T) {
	o := pythonOracle(t)
	var corpus struct {
		Seed   int64          `json:"seed"`
		Counts map[string]int `json:"counts"`
		Cases  []pyCase       `json:"cases"`
	}
	o.run(t, "cases", nil, &corpus)
	t.Logf("Python corpus: seed %d, %d cases", corpus.Seed, len(corpus.Cases))
	requireCorpus(t, corpus.Cases, 1000, map[string]int{
		"roundtrip": 40, "b64": 500, "trunc": 500, "mutate": 500, "resigned": 300,
		"time": 1000, "multi": 300, "nonascii": 50, "empty": 50,
	})
	if got := countsByCategory(corpus.Cases); !maps.Equal(got, corpus.Counts) {
		t.Errorf("the corpus's own counts %v differ from the cases sent %v", corpus.Counts, got)
	}
	kinds := compareAll(t, o, corpus.Cases)
	requireErrorKinds(t, kinds, 20)
	// Keys sharing a signing half: the HMAC passes under an earlier key, the
	// padding fails there, and a later key decrypts the token.
	fallThrough := 0
	for _, c := range corpus.Cases {
		if v := c.Verdict; v != nil && v.OK && v.Facts.HMACIndex >= 0 && v.Facts.HMACIndex < v.KeyIndex {
			fallThrough++
		}
	}
	t.Logf("%d valid cases fall through to a later key after a padding failure", fallThrough)
	if fallThrough < 10 {
		t.Errorf("only %d cases fall through to a later key after a padding failure, want at least 10", fallThrough)
	}
}

// requireErrorKinds fails the test unless every error the engine can
// return was called for at least min times.
func requireErrorKinds(t *testing.T, kinds map[string]int, atLeast int) {
	t.Helper()
	for _, kind := range []string{
		"malformed: base64 or non-ASCII", "malformed: empty or version byte", "malformed: length",
		"invalid signature", "expired", "future timestamp", "malformed: padding under every key that signed it",
	} {
		if kinds[kind] < atLeast {
			t.Errorf("only %d invalid cases of kind %q, want at least %d", kinds[kind], kind, atLeast)
		}
	}
}

// --- TestDifferentialGoMutations -------------------------------------------

// mutationSeed makes the Go-generated corpus the same on every run.
const mutationSeed = 0x66657266

// mutationCount is how many random cases Go makes for Python to judge.
const mutationCount = 4000

// TestDifferentialGoMutations has Go make seeded random tokens and
// mutations (bit flips, truncation, re-signing, bad padding, odd base64,
// junk and non-ASCII characters, keyrings of 1-3 keys, random TTLs), and
// Python judge them.
func TestDifferentialGoMutations(t *testing.T) {
	o := pythonOracle(t)
	cases := goMutationCases(mutationSeed, mutationCount)
	o.judge(t, cases)
	requireCorpus(t, cases, 1000, map[string]int{"mutation": 1000})
	kinds := compareAll(t, o, cases)
	requireErrorKinds(t, kinds, 10)
}

// testKey is a key the test can also use by hand.
type testKey struct {
	name string
	str  string // as given to ParseKey and Fernet()
	raw  []byte // 32 bytes: signing half, then encryption half
}

func mutationRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// mutationPool is the keys the mutation corpus signs with: K0, K1, K2, and
// S0 and S1, which share K0's signing half but not its encryption half.
func mutationPool(rng *rand.Rand) []testKey {
	k0 := newTestKey("K0", randBytes(rng, 32))
	return []testKey{
		k0,
		newTestKey("K1", randBytes(rng, 32)),
		newTestKey("K2", randBytes(rng, 32)),
		newTestKey("S0", append(append([]byte(nil), k0.raw[:16]...), randBytes(rng, 16)...)),
		newTestKey("S1", append(append([]byte(nil), k0.raw[:16]...), randBytes(rng, 16)...)),
	}
}

func newTestKey(name string, raw []byte) testKey {
	return testKey{name: name, str: base64.URLEncoding.EncodeToString(raw), raw: raw}
}

// sign appends HMAC-SHA256 under the key's signing half.
func (k testKey) sign(body []byte) []byte {
	mac := hmac.New(sha256.New, k.raw[:16])
	mac.Write(body)
	return mac.Sum(append([]byte(nil), body...))
}

// cbc encrypts whole blocks under the key's encryption half, unpadded.
func (k testKey) cbc(iv, blocks []byte) []byte {
	b, err := aes.NewCipher(k.raw[16:])
	if err != nil {
		panic(err)
	}
	out := make([]byte, len(blocks))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, blocks)
	return out
}

// tokenBody is an unsigned token: version, timestamp, IV, ciphertext.
func tokenBody(version byte, ts uint64, iv, ciphertext []byte) []byte {
	b := []byte{version}
	b = binary.BigEndian.AppendUint64(b, ts)
	b = append(b, iv...)
	return append(b, ciphertext...)
}

// seal is Fernet's encryption, written out independently of the engine.
func (k testKey) seal(ts uint64, iv, plaintext []byte) []byte {
	n := aes.BlockSize - len(plaintext)%aes.BlockSize
	padded := append(append([]byte(nil), plaintext...), bytes.Repeat([]byte{byte(n)}, n)...)
	return k.sign(tokenBody(0x80, ts, iv, k.cbc(iv, padded)))
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

var interestingTimestamps = []uint64{
	testNow, testNow - 1, testNow - 60, testNow - 61, testNow + 59, testNow + 60, testNow + 61,
	testNow - 3600, 0, 1, 59, 60, 61, math.MaxInt64 - 60, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64 - 60, math.MaxUint64,
}

var interestingTTLs = []int64{0, 1, -1, 59, 60, 61, 3600, -3600, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, math.MaxInt64 - 60}

const (
	b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/"
	junkChars   = "!.\x00\x7f~@#$%^&*()[]{}<>?,;:'\"\\|` \n\t\r\v\f="
)

var nonASCII = []string{"\u00e9", "\u00a0", "\u0085", "\u2028", "\u3000", "\uff21", "\U0001f600", "\xff", "\x80", "\xc3"}

// goMutationCases makes n seeded random cases, each described by the
// mutations that made it.
func goMutationCases(seed uint64, n int) []pyCase {
	rng := mutationRNG(seed)
	pool := mutationPool(rng)
	cases := make([]pyCase, 0, n)
	for i := range n {
		var desc []string
		note := func(format string, args ...any) { desc = append(desc, fmt.Sprintf(format, args...)) }

		signer := pick(rng, pool...)
		ptLen := pick(rng, 0, 1, 15, 16, 17, 31, 32, 33, rng.IntN(200))
		ts := pick(rng, interestingTimestamps...)
		if rng.IntN(8) == 0 {
			ts = rng.Uint64()
		}
		raw := signer.seal(ts, randBytes(rng, 16), randBytes(rng, ptLen))
		note("seal(%s, %d-byte plaintext, ts %d)", signer.name, ptLen, ts)

		for range pick(rng, 0, 0, 1, 2) {
			raw = mutateRaw(rng, raw, pool, signer, note)
		}
		if rng.IntN(3) == 0 {
			k := signer
			if rng.IntN(4) == 0 {
				k = pick(rng, pool...)
			}
			raw = resign(k, raw)
			note("resign(%s)", k.name)
		}
		token := encodeVariant(rng, raw, note)
		for range pick(rng, 0, 0, 1, 2) {
			token = mutateString(rng, token, note)
		}

		// A keyring of 1-3 distinct keys from the pool, usually with the signer.
		perm := rng.Perm(len(pool))
		ring := perm[:1+rng.IntN(3)]
		if rng.IntN(8) != 0 && !containsKey(pool, ring, signer) {
			ring[rng.IntN(len(ring))] = indexOf(pool, signer)
		}
		keys := make([]string, len(ring))
		names := make([]string, len(ring))
		for j, idx := range ring {
			keys[j], names[j] = pool[idx].str, pool[idx].name
		}
		note("keyring %v", names)

		c := pyCase{
			Name:     fmt.Sprintf("mutation/%d", i),
			Keys:     keys,
			Token:    []byte(token),
			Now:      testNow,
			Mutation: strings.Join(desc, " | "),
		}
		if rng.IntN(2) == 0 {
			ttl := pick(rng, interestingTTLs...)
			if rng.IntN(6) == 0 {
				ttl = int64(rng.Uint64())
			}
			c.TTL = &ttl
			switch rng.IntN(4) {
			case 0:
				c.Now = pick[int64](rng, 0, -1, -60, -61, math.MaxInt64, math.MinInt64, math.MaxInt64-60, int64(rng.Uint64()))
			case 1, 2:
				if ts <= math.MaxInt64-200 {
					c.Now = int64(ts) + int64(rng.IntN(241)) - 120
				}
			}
		}
		cases = append(cases, c)
	}
	return cases
}

func containsKey(pool []testKey, ring []int, k testKey) bool {
	for _, i := range ring {
		if pool[i].name == k.name {
			return true
		}
	}
	return false
}

func indexOf(pool []testKey, k testKey) int {
	for i := range pool {
		if pool[i].name == k.name {
			return i
		}
	}
	panic("key not in pool")
}

// resign replaces the last 32 bytes (the HMAC, if the token is that long)
// by a valid HMAC under k.
func resign(k testKey, raw []byte) []byte {
	if len(raw) >= sha256.Size {
		raw = raw[:len(raw)-sha256.Size]
	}
	return k.sign(raw)
}

func mutateRaw(rng *rand.Rand, raw []byte, pool []testKey, signer testKey, note func(string, ...any)) []byte {
	raw = append([]byte(nil), raw...)
	switch op := rng.IntN(9); {
	case op == 0 && len(raw) > 0:
		bit := rng.IntN(len(raw) * 8)
		raw[bit/8] ^= 0x80 >> (bit % 8)
		note("flip bit %d", bit)
	case op == 1:
		n := rng.IntN(len(raw) + 1)
		if rng.IntN(2) == 0 && len(raw) > 57 {
			n = 57 + rng.IntN(len(raw)-57+1) // keep the header, cut the ciphertext
		}
		raw = raw[:n]
		note("truncate raw to %d bytes", n)
	case op == 2:
		n := 1 + rng.IntN(33)
		raw = append(raw, randBytes(rng, n)...)
		note("append %d raw bytes", n)
	case op == 3 && len(raw) > 0:
		i, b := rng.IntN(len(raw)), byte(rng.Uint32())
		raw[i] = b
		note("raw[%d] = 0x%02x", i, b)
	case op == 4 && len(raw) > 0:
		v := pick[byte](rng, 0x00, 0x7f, 0x81, 0xff, byte(rng.Uint32()))
		raw[0] = v
		note("version byte 0x%02x", v)
	case op == 5 && len(raw) >= 9:
		ts := pick(rng, interestingTimestamps...)
		binary.BigEndian.PutUint64(raw[1:9], ts)
		note("timestamp %d", ts)
	case op == 6 && len(raw) >= 25:
		// Valid HMAC, chosen last block: mostly bad PKCS7 padding.
		last := randBytes(rng, 16)
		switch rng.IntN(5) {
		case 0:
			last[15] = 0
		case 1:
			last[15] = pick[byte](rng, 17, 32, 128, 255)
		case 2:
			n := 1 + rng.IntN(16)
			for j := 16 - n; j < 16; j++ {
				last[j] = byte(n)
			}
			last[16-n+rng.IntN(n)] ^= byte(1 + rng.IntN(255)) // one wrong padding byte
		case 3:
			n := 1 + rng.IntN(16)
			for j := 16 - n; j < 16; j++ {
				last[j] = byte(n) // valid padding
			}
		}
		enc := pick(rng, pool...)
		blocks := append(randBytes(rng, 16*rng.IntN(3)), last...)
		iv := raw[9:25]
		raw = signer.sign(tokenBody(raw[0], binary.BigEndian.Uint64(raw[1:9]), iv, enc.cbc(iv, blocks)))
		note("re-encrypt %d blocks under %s's encryption half, last block %x, signed by %s", len(blocks)/16, enc.name, last, signer.name)
	case op == 7 && len(raw) >= 25:
		n := rng.IntN(65)
		raw = signer.sign(tokenBody(raw[0], binary.BigEndian.Uint64(raw[1:9]), raw[9:25], randBytes(rng, n)))
		note("random %d-byte ciphertext signed by %s", n, signer.name)
	case op == 8 && len(raw) > 0:
		n := 1 + rng.IntN(min(len(raw), 40))
		raw = raw[n:]
		note("drop %d leading raw bytes", n)
	default:
		note("no-op")
	}
	return raw
}

// encodeVariant encodes raw as base64 that Python may or may not accept.
func encodeVariant(rng *rand.Rand, raw []byte, note func(string, ...any)) string {
	s := base64.URLEncoding.EncodeToString(raw)
	switch rng.IntN(10) {
	case 0:
		s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
		note("standard alphabet")
	case 1:
		s = strings.TrimRight(s, "=")
		note("no padding")
	case 2:
		b := []byte(s)
		for i, c := range b {
			switch {
			case rng.IntN(2) == 0:
			case c == '-':
				b[i] = '+'
			case c == '_':
				b[i] = '/'
			}
		}
		s = string(b)
		note("mixed alphabets")
	case 3:
		n := 1 + rng.IntN(4)
		s += strings.Repeat("=", n)
		note("%d extra '='", n)
	default:
		note("canonical")
	}
	return s
}

func mutateString(rng *rand.Rand, s string, note func(string, ...any)) string {
	p := rng.IntN(len(s) + 1)
	switch rng.IntN(10) {
	case 0, 1:
		c := pick(rng, string(b64Alphabet[rng.IntN(len(b64Alphabet))]), string(junkChars[rng.IntN(len(junkChars))]), "=", "==")
		note("insert %q at %d", c, p)
		return s[:p] + c + s[p:]
	case 2:
		if p == len(s) {
			break
		}
		note("delete char %d", p)
		return s[:p] + s[p+1:]
	case 3:
		if p == len(s) {
			break
		}
		c := b64Alphabet[rng.IntN(len(b64Alphabet))]
		note("char %d %q -> %q", p, s[p], c)
		return s[:p] + string(c) + s[p+1:]
	case 4:
		note("truncate string to %d", p)
		return s[:p]
	case 5:
		tail := pick(rng, "=", "==", "AAAA", "gAAA", "\n", "AA==", "!junk!", "====AAAA", s)
		note("append %q", clipString(tail))
		return s + tail
	case 6:
		if rng.IntN(3) == 0 {
			c := pick(rng, nonASCII...)
			note("insert non-ASCII %q at %d", c, p)
			return s[:p] + c + s[p:]
		}
	case 7:
		ws := strings.Repeat(pick(rng, " ", "\n", "\t", "\r\n"), 1+rng.IntN(3))
		note("insert %q at %d", ws, p)
		return s[:p] + ws + s[p:]
	case 8:
		q := rng.IntN(len(s) + 1)
		lo, hi := min(p, q), max(p, q)
		note("duplicate [%d:%d]", lo, hi)
		return s[:hi] + s[lo:hi] + s[hi:]
	}
	note("string no-op")
	return s
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}

func clipString(s string) string { return string(clip([]byte(s))) }

// --- TestDifferentialEncrypt -----------------------------------------------

// TestDifferentialEncrypt has Python decrypt what the engine encrypts:
// Encrypt, EncryptAtTime at timestamps up to 2^64-1, and ReEncrypt, whose
// result must keep the original timestamp and be under the primary key.
func TestDifferentialEncrypt(t *testing.T) {
	o := pythonOracle(t)
	rng := rand.New(rand.NewPCG(7, 11))
	var tk [3]testKey
	var keys [3]*fernet.Key
	for i := range tk {
		tk[i] = newTestKey(fmt.Sprintf("K%d", i), randBytes(rng, 32))
		k, err := fernet.ParseKey(tk[i].str)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", tk[i].str, err)
		}
		keys[i] = k
	}
	generated := testkeys.New(t)
	rings := []struct {
		ring *fernet.Keyring
		strs []string
	}{
		{fernet.NewKeyring(keys[0]), []string{tk[0].str}},
		{fernet.NewKeyring(keys[0], keys[1]), []string{tk[0].str, tk[1].str}},
		{fernet.NewKeyring(keys[1], keys[0], keys[2]), []string{tk[1].str, tk[0].str, tk[2].str}},
		{fernet.NewKeyring(generated, keys[2]), []string{generated.Encode(), tk[2].str}},
	}
	var wants []checkWant
	lengths := []int{0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 255, 1000, 65536}
	stamps := append([]uint64{1 << 31, 1 << 32, math.MaxUint32, math.MaxInt64 - 1, 1<<63 + 12345, math.MaxUint64 - 1, rng.Uint64()}, interestingTimestamps...)
	for ri, r := range rings {
		primaryID := r.ring.Primary().ID()
		for _, n := range lengths {
			pt := randBytes(rng, n)
			ts := pick(rng, stamps...)
			e, err := r.ring.EncryptAtTime(pt, ts)
			if err != nil {
				t.Fatalf("ring %d: EncryptAtTime(%d bytes, %d): %v", ri, n, ts, err)
			}
			if e.KeyID != primaryID {
				t.Errorf("ring %d: EncryptAtTime: KeyID %s, want the primary's %s", ri, e.KeyID, primaryID)
			}
			wants = append(wants, checkWant{what: fmt.Sprintf("ring %d EncryptAtTime(%d bytes, %d)", ri, n, ts),
				keys: r.strs, token: e.Token, plaintext: pt, timestamp: ts})

			before := uint64(time.Now().Unix())
			e, err = r.ring.Encrypt(pt)
			after := uint64(time.Now().Unix())
			if err != nil {
				t.Fatalf("ring %d: Encrypt: %v", ri, err)
			}
			wants = append(wants, checkWant{what: fmt.Sprintf("ring %d Encrypt(%d bytes)", ri, n),
				keys: r.strs, token: e.Token, plaintext: pt, timestamp: before, timestampMax: after})
		}
		for _, ts := range stamps {
			e, err := r.ring.EncryptAtTime([]byte("stamp"), ts)
			if err != nil {
				t.Fatalf("ring %d: EncryptAtTime(%d): %v", ri, ts, err)
			}
			wants = append(wants, checkWant{what: fmt.Sprintf("ring %d EncryptAtTime(ts %d)", ri, ts),
				keys: r.strs, token: e.Token, plaintext: []byte("stamp"), timestamp: ts})
			if d, err := r.ring.Decrypt(e.Token); err != nil || d.Timestamp != ts || !d.Primary {
				t.Errorf("ring %d: Decrypt(EncryptAtTime(ts %d)) = %+v, %v", ri, ts, d, err)
			}
		}
	}

	// ReEncrypt: tokens under each key of a ring [K0, K1, K2] move to K0
	// with their own timestamps; canonical primary tokens stay as they are.
	ring := fernet.NewKeyring(keys[0], keys[1], keys[2])
	strs := []string{tk[0].str, tk[1].str, tk[2].str}
	for ki := range keys {
		for _, ts := range stamps {
			pt := randBytes(rng, rng.IntN(40))
			raw := tk[ki].seal(ts, randBytes(rng, 16), pt)
			for _, form := range []string{"canonical", "standard", "whitespace"} {
				token := base64.URLEncoding.EncodeToString(raw)
				switch form {
				case "standard":
					token = strings.NewReplacer("-", "+", "_", "/").Replace(token)
				case "whitespace":
					token = token[:30] + "\n" + token[30:] + "\n"
				}
				what := fmt.Sprintf("ReEncrypt(%s token under K%d, ts %d)", form, ki, ts)
				re, err := ring.ReEncrypt(token)
				if err != nil {
					t.Errorf("%s: %v", what, err)
					continue
				}
				canonical := token == base64.URLEncoding.EncodeToString(raw)
				if re.FromPrimary != (ki == 0) || re.Changed == (ki == 0 && canonical) || re.KeyID != keys[0].ID() {
					t.Errorf("%s: FromPrimary %v Changed %v KeyID %s; want %v, %v, %s",
						what, re.FromPrimary, re.Changed, re.KeyID, ki == 0, !(ki == 0 && canonical), keys[0].ID())
				}
				wants = append(wants, checkWant{what: what, keys: strs, token: re.Token, plaintext: pt, timestamp: ts})
			}
		}
	}
	if len(wants) < 300 {
		t.Fatalf("only %d tokens to check", len(wants))
	}
	checkTokens(t, o, wants)
}

// --- TestDifferentialParseKey ----------------------------------------------

type pyKeyVerdict struct {
	Accepted bool   `json:"accepted"`
	Error    string `json:"error"`
	Raw      []byte `json:"raw_b64"`
}

// hexExtension reports whether s is 64 hex characters with nothing around
// them but ASCII whitespace: ParseKey's own extension, which Python rejects.
func hexExtension(s string) ([]byte, bool) {
	s = strings.Trim(s, " \t\n\r\v\f")
	if len(s) != 64 {
		return nil, false
	}
	raw, err := hex.DecodeString(s)
	return raw, err == nil
}

// keyForms makes key strings around the lenient edges of Fernet(key).
func keyForms(rng *rand.Rand) []string {
	var forms []string
	add := func(s ...string) { forms = append(forms, s...) }
	for i := range 3 {
		raw := randBytes(rng, 32)
		if i == 0 {
			raw[0], raw[1] = 0xfb, 0xff // guarantees '-' and '_' in the encoding
		}
		k := base64.URLEncoding.EncodeToString(raw)
		body := strings.TrimRight(k, "=")
		add(k, strings.NewReplacer("-", "+", "_", "/").Replace(k), body, k+"=", k+"==", k+"===", "="+k)
		add(" "+k, k+"\n", "\t"+k+"\r\n", k[:10]+" "+k[10:], strings.Join(strings.Split(k, ""), " "))
		for _, j := range strings.Split(junkChars, "") {
			add(k[:20]+j+k[20:], j+k)
		}
		for p := 0; p <= len(body); p++ {
			add(k[:p] + "=" + k[p:])
		}
		for p := 0; p <= len(k); p++ {
			add(k[:p])
		}
		last := strings.IndexByte(b64Alphabet, body[len(body)-1])
		for low := range 4 {
			add(body[:len(body)-1] + string(b64Alphabet[last&^3|low]) + "=")
		}
		add(k+"AAAA", k+"!!", k+k, k+"\n"+k, body+"A", body+"AA==")
		add(base64.URLEncoding.EncodeToString(raw[:31]), base64.URLEncoding.EncodeToString(append(raw, 0)))
		// hex: the extension, and what is close to it but is not it
		h := hex.EncodeToString(raw)
		add(h, strings.ToUpper(h), " "+h+"\n", h[:63], h+"0", h[:32]+" "+h[32:], h[:43]+"=", "\u00a0"+h, h+"\u2028", "0x"+h)
		add(h[:20] + "\u00e9" + h[20:])
		// non-ASCII in an otherwise valid key
		for _, c := range nonASCII {
			add(k[:20]+c+k[20:], k+c)
		}
	}
	add("", " ", "=", "====", "\x00", strings.Repeat("A", 43)+"=", strings.Repeat("A", 44), strings.Repeat("A", 42)+"==")
	// Random strings near the length of a key, mostly from the alphabet.
	for range 600 {
		n := 40 + rng.IntN(12)
		b := make([]byte, n)
		for j := range b {
			switch rng.IntN(20) {
			case 0:
				b[j] = junkChars[rng.IntN(len(junkChars))]
			case 1:
				b[j] = '='
			default:
				b[j] = b64Alphabet[rng.IntN(len(b64Alphabet))]
			}
		}
		add(string(b))
	}
	return forms
}

// TestDifferentialParseKey has Python say which key strings Fernet(key)
// accepts, and ParseKey must agree: the same verdict and the same 32 bytes.
// The one exception is ParseKey's hex extension.
func TestDifferentialParseKey(t *testing.T) {
	o := pythonOracle(t)
	forms := keyForms(rand.New(rand.NewPCG(3, 5)))
	type item struct {
		Key []byte `json:"key_b64"`
	}
	in := make([]item, len(forms))
	for i, s := range forms {
		in[i] = item{Key: []byte(s)}
	}
	var got []pyKeyVerdict
	o.run(t, "keys", in, &got)
	if len(got) != len(forms) {
		t.Fatalf("keys: sent %d, got %d", len(forms), len(got))
	}
	var r reporter
	var accepted, hexForms int
	for i, s := range forms {
		py := got[i]
		k, err := fernet.ParseKey(s)
		if err != nil && len(s) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(s)) {
			r.add(t, fmt.Sprintf("key form %d %q: ParseKey's error quotes the key: %v", i, s, err))
		}
		wantRaw, wantOK, why := py.Raw, py.Accepted, fmt.Sprintf("Python accepts it (%x)", py.Raw)
		if raw, ok := hexExtension(s); ok {
			hexForms++
			if py.Accepted {
				r.add(t, fmt.Sprintf("key form %d %q: Python accepts 64 hex characters (%x); the hex extension assumed it never does", i, s, py.Raw))
				continue
			}
			wantRaw, wantOK, why = raw, true, "it is 64 hex characters, our extension (Python rejects it)"
		}
		switch {
		case wantOK && err != nil:
			r.add(t, fmt.Sprintf("key form %d %q: %s, ParseKey: %v", i, s, why, err))
		case !wantOK && err == nil:
			note := ""
			if _, ok := hexExtension(strings.TrimSpace(s)); ok {
				note = "; the hex extension allows only ASCII whitespace around the 64 hex characters, and Python rejects non-ASCII"
			}
			r.add(t, fmt.Sprintf("key form %d %q: Python rejects it (%s), ParseKey accepts it (id %s)%s", i, s, py.Error, k.ID(), note))
		case wantOK:
			accepted++
			if want := base64.URLEncoding.EncodeToString(wantRaw); k.Encode() != want {
				r.add(t, fmt.Sprintf("key form %d %q: ParseKey reads %s, Python %s", i, s, k.Encode(), want))
			}
		}
	}
	t.Logf("%d key forms: %d accepted, %d of them by the hex extension", len(forms), accepted, hexForms)
	if len(forms) < 500 || accepted < 50 || len(forms)-accepted < 50 || hexForms < 6 {
		t.Errorf("lopsided key corpus: %d forms, %d accepted, %d hex", len(forms), accepted, hexForms)
	}
	r.done(t, fmt.Sprintf("%d key forms compared", len(forms)))
}
