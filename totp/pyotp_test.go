package totp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// pyotpScript reads cases as JSON lines and, for each, has pyotp make the
// code of the step `offset` from `now`, and say whether
// TOTP.verify(code, now, valid_window=window) takes that code and
// `other`, a code pyotp did not make.
const pyotpScript = `
import hashlib, json, sys
import pyotp
digests = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
for line in sys.stdin:
    c = json.loads(line)
    otp = pyotp.TOTP(c["secret"], digits=c["digits"], digest=digests[c["algorithm"]], interval=c["period"])
    code = otp.at(c["now"], c["offset"])
    print(json.dumps({
        "code": code,
        "code_ok": otp.verify(code, c["now"], valid_window=c["window"]),
        "other_ok": otp.verify(c["other"], c["now"], valid_window=c["window"]),
    }))
`

type pyotpCase struct {
	Secret    string `json:"secret"`
	Digits    int    `json:"digits"`
	Algorithm string `json:"algorithm"`
	Period    int    `json:"period"`
	Now       int64  `json:"now"`
	Offset    int    `json:"offset"`
	Window    int    `json:"window"`
	Other     string `json:"other"`
}

type pyotpAnswer struct {
	Code    string `json:"code"`
	CodeOK  bool   `json:"code_ok"`
	OtherOK bool   `json:"other_ok"`
}

// TestAgreesWithPyotp holds Verify to Debian's python3-pyotp: for secrets,
// parameters and times drawn at random, pyotp makes the codes of every
// step from two before the window to two after it, and Verify (with no
// last counter) must take exactly the codes pyotp.TOTP.verify takes, at
// the step pyotp made them for; likewise for random codes.
func TestAgreesWithPyotp(t *testing.T) {
	python := testenv.Python(t, []string{"pyotp"}, "python3-pyotp")
	random := rand.New(rand.NewPCG(1, 2))
	algorithms := []totp.Algorithm{totp.SHA1, totp.SHA256, totp.SHA512}
	var cases []pyotpCase
	var secrets [][]byte
	for range 60 {
		secret := make([]byte, 10+random.IntN(55))
		for i := range secret {
			secret[i] = byte(random.Uint32())
		}
		digits := totp.MinDigits + random.IntN(totp.MaxDigits-totp.MinDigits+1)
		algorithm := algorithms[random.IntN(len(algorithms))]
		period := []int{30, 30, 60, 15, 1 + random.IntN(totp.MaxPeriodSeconds)}[random.IntN(5)]
		now := random.Int64N(4e9)
		// Every window edge: the last steps inside and the first outside.
		for window := 0; window <= 3; window++ {
			for offset := -window - 2; offset <= window+2; offset++ {
				cases = append(cases, pyotpCase{
					Secret: totp.EncodeBase32(secret), Digits: digits, Algorithm: algorithm.String(), Period: period,
					Now: now, Offset: offset, Window: window, Other: fmt.Sprintf("%0*d", digits, random.IntN(pow10(digits))),
				})
				secrets = append(secrets, secret)
			}
		}
		// The first and last second of a step.
		now = now - now%int64(period)
		for _, edge := range []int64{now, now + int64(period) - 1} {
			cases = append(cases, pyotpCase{
				Secret: totp.EncodeBase32(secret), Digits: digits, Algorithm: algorithm.String(), Period: period,
				Now: edge, Offset: 1, Window: 1, Other: strings.Repeat("0", digits),
			})
			secrets = append(secrets, secret)
		}
	}

	var input bytes.Buffer
	encoder := json.NewEncoder(&input)
	for _, c := range cases {
		if err := encoder.Encode(c); err != nil {
			t.Fatal(err)
		}
	}
	out := testenv.RunPython(t, python, pyotpScript, input.Bytes())
	decoder := json.NewDecoder(bytes.NewReader(out))
	algorithmOf := map[string]totp.Algorithm{"SHA1": totp.SHA1, "SHA256": totp.SHA256, "SHA512": totp.SHA512}
	for i, c := range cases {
		var answer pyotpAnswer
		if err := decoder.Decode(&answer); err != nil {
			t.Fatalf("case %d: reading pyotp's answer: %v", i, err)
		}
		check := totp.Check{Params: totp.Params{Digits: c.Digits, PeriodSeconds: c.Period, Algorithm: algorithmOf[c.Algorithm]}, Window: c.Window}
		now := time.Unix(c.Now, 0)
		if made := check.Code(secrets[i], uint64(int64(check.Counter(now))+int64(c.Offset))); made != answer.Code {
			t.Errorf("case %+v: pyotp made %s, Code made %s", c, answer.Code, made)
		}
		got, err := totp.Verify(secrets[i], answer.Code, now, check)
		if err != nil {
			t.Fatalf("case %+v: Verify: %v", c, err)
		}
		if (got.Outcome == totp.Valid) != answer.CodeOK {
			t.Errorf("case %+v: pyotp's code %s: Verify %v, pyotp.verify %v", c, answer.Code, got.Outcome, answer.CodeOK)
		}
		if answer.CodeOK && check.Code(secrets[i], got.Counter) != answer.Code {
			t.Errorf("case %+v: Verify matched step %d, whose code is not %s", c, got.Counter, answer.Code)
		}
		other, err := totp.Verify(secrets[i], c.Other, now, check)
		if err != nil || (other.Outcome == totp.Valid) != answer.OtherOK {
			t.Errorf("case %+v: code %s: Verify %v (%v), pyotp.verify %v", c, c.Other, other.Outcome, err, answer.OtherOK)
		}
	}
	t.Logf("%d cases agree with pyotp", len(cases))
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}
