package server

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

const (
	totpValid       = fernetv1.TOTPOutcome_TOTP_OUTCOME_VALID
	totpInvalidCode = fernetv1.TOTPOutcome_TOTP_OUTCOME_INVALID_CODE
	totpReplayed    = fernetv1.TOTPOutcome_TOTP_OUTCOME_REPLAYED
)

// secretOf reads the base32 secret out of a token the server made.
func (ts *testServer) secretOf(t *testing.T, token string) []byte {
	t.Helper()
	opened, err := fernet.NewKeyring(ts.primary).Decrypt(token)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := totp.DecodeBase32(opened.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestVerifyTOTPEnrolAndLogIn is the life of a secret: enrol, log in,
// replay the code, then a wrong code, with each outcome counted.
func TestVerifyTOTPEnrolAndLogIn(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	enrolled, err := ts.client.CreateTOTP(ctx(t), &fernetv1.CreateTOTPRequest{AccountName: "alice", Issuer: "Example"})
	if err != nil {
		t.Fatal(err)
	}
	secret := ts.secretOf(t, enrolled.GetToken())
	now := time.Now()
	code := totp.Defaults.Code(secret, totp.Defaults.Counter(now))

	login, err := ts.client.VerifyTOTP(ctx(t), &fernetv1.VerifyTOTPRequest{Token: enrolled.GetToken(), Code: code})
	if err != nil {
		t.Fatal(err)
	}
	// The step may have turned between making the code and checking it.
	if login.GetOutcome() != totpValid || login.GetCounter() != totp.Defaults.Counter(now) || login.GetDrift() > 0 || login.GetDrift() < -1 ||
		login.GetKeyId() != ts.primary.ID() || login.GetNeedsReencrypt() {
		t.Fatalf("VerifyTOTP = %v, want VALID at step %d under the primary key", login, totp.Defaults.Counter(now))
	}
	replay, err := ts.client.VerifyTOTP(ctx(t), &fernetv1.VerifyTOTPRequest{Token: enrolled.GetToken(), Code: code, LastCounter: proto.Uint64(login.GetCounter())})
	if err != nil || replay.GetOutcome() != totpReplayed || replay.GetCounter() != login.GetCounter() {
		t.Fatalf("replayed code: VerifyTOTP = %v, %v; want REPLAYED at step %d", replay, err, login.GetCounter())
	}
	next := totp.Defaults.Code(secret, login.GetCounter()+1)
	ahead, err := ts.client.VerifyTOTP(ctx(t), &fernetv1.VerifyTOTPRequest{Token: enrolled.GetToken(), Code: next, LastCounter: proto.Uint64(login.GetCounter())})
	if err != nil || ahead.GetOutcome() != totpValid || ahead.GetCounter() != login.GetCounter()+1 {
		t.Fatalf("next step's code: VerifyTOTP = %v, %v; want VALID at step %d", ahead, err, login.GetCounter()+1)
	}
	wrong := "000000"
	for drift := -2; drift <= 2; drift++ {
		if totp.Defaults.Code(secret, uint64(int64(totp.Defaults.Counter(now))+int64(drift))) == wrong {
			wrong = "999999" // one chance in 200,000 that both are codes of the window
		}
	}
	refused, err := ts.client.VerifyTOTP(ctx(t), &fernetv1.VerifyTOTPRequest{Token: enrolled.GetToken(), Code: wrong})
	if err != nil || refused.GetOutcome() != totpInvalidCode || refused.GetCounter() != 0 {
		t.Fatalf("wrong code: VerifyTOTP = %v, %v; want INVALID_CODE", refused, err)
	}
	for outcome, want := range map[string]float64{"valid": 2, "replayed": 1, "invalid_code": 1} {
		if got := ts.metric(t, "fernet_totp_verifications_total", "outcome", outcome); got != want {
			t.Errorf("fernet_totp_verifications_total{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := ts.metric(t, "fernet_operation_duration_seconds", "operation", operationVerify); got != 4 {
		t.Errorf("fernet_operation_duration_seconds{operation=verify_totp} has %v samples, want 4", got)
	}
}

// TestVerifyTOTPParameters: secrets stored by other libraries (hex from
// django-otp, base32 in any form), under an old key, with other
// parameters; the window and the code's format.
func TestVerifyTOTPParameters(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	secret := []byte("12345678901234567890")
	// The server checks each code against its own clock: start at least
	// 5 s before the end of a 30 s (and so of a 60 s) step, so that no
	// step ends between making a code and checking it.
	for time.Now().Unix()%30 >= 25 {
		time.Sleep(100 * time.Millisecond)
	}
	now := time.Now()
	sha256x8 := totp.Params{Digits: 8, PeriodSeconds: 60, Algorithm: totp.SHA256}
	codeAt := func(params totp.Params, drift int) string {
		return params.Code(secret, uint64(int64(params.Counter(now))+int64(drift)))
	}
	lowerSpaced := strings.ToLower("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ")
	tests := []struct {
		name  string
		req   *fernetv1.VerifyTOTPRequest
		want  fernetv1.TOTPOutcome
		reenc bool
	}{
		{"django-otp hex key", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, hex.EncodeToString(secret), 1), Code: codeAt(totp.Defaults, 0),
			Encoding: fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_HEX,
		}, totpValid, false},
		{"base32 in lower case with spaces, under the old key", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.old, lowerSpaced, 1), Code: codeAt(totp.Defaults, 0),
			Encoding: fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_BASE32,
		}, totpValid, true},
		{"SHA256, 8 digits, 60 s", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, totp.EncodeBase32(secret), 1), Code: codeAt(sha256x8, 0),
			Digits: 8, PeriodSeconds: 60, Algorithm: fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA256,
		}, totpValid, false},
		{"the same code read as SHA1", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, totp.EncodeBase32(secret), 1), Code: codeAt(sha256x8, 0),
			Digits: 8, PeriodSeconds: 60,
		}, totpInvalidCode, false},
		{"three steps back, window 3", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, totp.EncodeBase32(secret), 1), Code: codeAt(totp.Defaults, -3), Window: proto.Uint32(3),
		}, totpValid, false},
		{"three steps back, window unset (1)", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, totp.EncodeBase32(secret), 1), Code: codeAt(totp.Defaults, -3),
		}, totpInvalidCode, false},
		{"a code with a space", &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, totp.EncodeBase32(secret), 1), Code: codeAt(totp.Defaults, 0)[:3] + " " + codeAt(totp.Defaults, 0)[3:],
		}, totpInvalidCode, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.client.VerifyTOTP(ctx(t), tt.req)
			if err != nil || resp.GetOutcome() != tt.want || resp.GetNeedsReencrypt() != tt.reenc {
				t.Fatalf("VerifyTOTP = %v, %v; want %v, needs_reencrypt %v", resp, err, tt.want, tt.reenc)
			}
		})
	}
	// Window 0 takes only the current step; the step may turn between
	// making the code and checking it, so one retry is allowed.
	for attempt := 0; ; attempt++ {
		now = time.Now()
		resp, err := ts.client.VerifyTOTP(ctx(t), &fernetv1.VerifyTOTPRequest{
			Token: tokenUnder(t, ts.primary, totp.EncodeBase32(secret), 1), Code: codeAt(totp.Defaults, 0), Window: proto.Uint32(0),
		})
		if err == nil && resp.GetOutcome() == totpValid && resp.GetDrift() == 0 {
			break
		}
		if attempt > 0 {
			t.Fatalf("window 0, current step: VerifyTOTP = %v, %v; want VALID", resp, err)
		}
	}
}

func TestVerifyTOTPFailures(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	const secretText = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	good := tokenUnder(t, ts.primary, secretText, 1)
	notBase32 := tokenUnder(t, ts.primary, "this is no secret!", 1)
	tests := []struct {
		name   string
		req    *fernetv1.VerifyTOTPRequest
		reason string
	}{
		{"garbage token", &fernetv1.VerifyTOTPRequest{Token: "garbage", Code: "123456"}, reasons.Malformed},
		{"unknown key", &fernetv1.VerifyTOTPRequest{Token: tokenUnder(t, newKey(t), secretText, 1), Code: "123456"}, reasons.InvalidSignature},
		{"not base32", &fernetv1.VerifyTOTPRequest{Token: notBase32, Code: "123456"}, reasons.InvalidTOTPSecret},
		{"base32 read as hex", &fernetv1.VerifyTOTPRequest{Token: good, Code: "123456", Encoding: fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_HEX}, reasons.InvalidTOTPSecret},
		{"window 11", &fernetv1.VerifyTOTPRequest{Token: good, Code: "123456", Window: proto.Uint32(11)}, reasons.InvalidTOTPParameter},
		{"9 digits", &fernetv1.VerifyTOTPRequest{Token: good, Code: "123456", Digits: 9}, reasons.InvalidTOTPParameter},
		{"period too long", &fernetv1.VerifyTOTPRequest{Token: good, Code: "123456", PeriodSeconds: totp.MaxPeriodSeconds + 1}, reasons.InvalidTOTPParameter},
		{"unknown algorithm", &fernetv1.VerifyTOTPRequest{Token: good, Code: "123456", Algorithm: 9}, reasons.InvalidTOTPParameter},
		{"unknown encoding", &fernetv1.VerifyTOTPRequest{Token: good, Code: "123456", Encoding: 9}, reasons.InvalidTOTPParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.client.VerifyTOTP(ctx(t), tt.req)
			wantReason(t, err, tt.reason, tt.req.GetToken(), secretText, "this is no secret")
		})
	}
	for _, outcome := range []string{"valid", "invalid_code", "replayed"} {
		if got := ts.metric(t, "fernet_totp_verifications_total", "outcome", outcome); got != 0 {
			t.Errorf("fernet_totp_verifications_total{outcome=%s} = %v, want 0: no code was checked", outcome, got)
		}
	}
	if got := ts.metric(t, "fernet_operations_total", "operation", operationVerify, "outcome", "error"); got != float64(len(tests)) {
		t.Errorf("fernet_operations_total{operation=verify_totp,outcome=error} = %v, want %d", got, len(tests))
	}
}

// pyotpEnrolScript reads JSON lines of a Fernet key, a token and a
// provisioning URI. It decrypts the token with Python's Fernet, checks
// that pyotp reads the same secret from the URI, and prints the code
// pyotp's TOTP of that URI makes now.
const pyotpEnrolScript = `
import json, sys
import pyotp
from cryptography.fernet import Fernet
for line in sys.stdin:
    c = json.loads(line)
    secret = Fernet(c["key"]).decrypt(c["token"].encode()).decode()
    otp = pyotp.parse_uri(c["uri"])
    if otp.secret != secret:
        sys.exit("the URI's secret is not the token's")
    if pyotp.TOTP(secret, digits=otp.digits, digest=otp.digest, interval=otp.interval).now() != otp.now():
        sys.exit("pyotp makes other codes from the token's secret than from the URI")
    print(json.dumps({"code": otp.now(), "digits": otp.digits, "interval": otp.interval, "digest": otp.digest().name}))
`

// TestVerifyTOTPAgreesWithPyotp: for secrets the sidecar made, Debian's
// python3-pyotp reads the provisioning URI as the sidecar meant it, the
// token decrypts in Python to the same secret, and the code pyotp makes
// now verifies.
func TestVerifyTOTPAgreesWithPyotp(t *testing.T) {
	python := testenv.LookPath(t, "/usr/bin/python3")
	if out, err := exec.CommandContext(t.Context(), python, "-c", "import pyotp, cryptography").CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("pyotp and cryptography for %s (%v: %s; apt-get install python3-pyotp python3-cryptography)", python, err, out))
	}
	ts := startServer(t, DefaultLimits)
	algorithms := map[fernetv1.TOTPAlgorithm]string{
		fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_UNSPECIFIED: "sha1",
		fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA256:      "sha256",
		fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA512:      "sha512",
	}
	var requests []*fernetv1.CreateTOTPRequest
	for algorithm := range algorithms {
		for _, digits := range []uint32{0, 7, 8} {
			requests = append(requests, &fernetv1.CreateTOTPRequest{
				AccountName: "user " + fmt.Sprint(len(requests)) + "@example.com", Issuer: "Example Inc.", // pyotp.parse_uri unquotes before it splits: no "&"
				Digits: digits, PeriodSeconds: []uint32{0, 60, 3600}[digits%3], Algorithm: algorithm, SecretBytes: []uint32{0, 16, 64}[digits%3],
			})
		}
	}
	var input bytes.Buffer
	var tokens []string
	for _, req := range requests {
		resp, err := ts.client.CreateTOTP(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, resp.GetToken())
		line, _ := json.Marshal(map[string]string{"key": ts.primary.Encode(), "token": resp.GetToken(), "uri": resp.GetProvisioningUri()})
		input.Write(append(line, '\n'))
	}
	cmd := exec.CommandContext(t.Context(), python, "-c", pyotpEnrolScript)
	cmd.Stdin = &input
	cmd.Env = append(os.Environ(), "TZ=UTC") // pyotp works in local time
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyotp: %v\n%s", err, stderr.Bytes())
	}
	decoder := json.NewDecoder(bytes.NewReader(out))
	for i, req := range requests {
		var made struct {
			Code     string `json:"code"`
			Digits   uint32 `json:"digits"`
			Interval uint32 `json:"interval"`
			Digest   string `json:"digest"`
		}
		if err := decoder.Decode(&made); err != nil {
			t.Fatalf("reading pyotp's answer %d: %v", i, err)
		}
		params, _ := totpParams(req.GetDigits(), req.GetPeriodSeconds(), req.GetAlgorithm())
		if made.Digits != uint32(params.Digits) || made.Interval != uint32(params.PeriodSeconds) || made.Digest != algorithms[req.GetAlgorithm()] {
			t.Errorf("%v: pyotp read the URI as %+v", req, made)
		}
		resp, err := ts.client.VerifyTOTP(ctx(t), &fernetv1.VerifyTOTPRequest{
			Token: tokens[i], Code: made.Code, Digits: req.GetDigits(), PeriodSeconds: req.GetPeriodSeconds(), Algorithm: req.GetAlgorithm(),
		})
		if err != nil || resp.GetOutcome() != totpValid {
			t.Errorf("%v: the code pyotp made: VerifyTOTP = %v, %v; want VALID", req, resp, err)
		}
	}
}
