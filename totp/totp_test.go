package totp_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// TestRFC6238Vectors holds Code to the test vectors of RFC 6238, Appendix
// B: 8 digits, 30 s, with the seed of each algorithm.
func TestRFC6238Vectors(t *testing.T) {
	seeds := map[totp.Algorithm][]byte{
		totp.SHA1:   []byte("12345678901234567890"),
		totp.SHA256: []byte("12345678901234567890123456789012"),
		totp.SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	vectors := []struct {
		unix                 int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, v := range vectors {
		for algorithm, want := range map[totp.Algorithm]string{totp.SHA1: v.sha1, totp.SHA256: v.sha256, totp.SHA512: v.sha512} {
			params := totp.Params{Digits: 8, PeriodSeconds: 30, Algorithm: algorithm}
			now := time.Unix(v.unix, 0)
			if got := params.Code(seeds[algorithm], params.Counter(now)); got != want {
				t.Errorf("%s at %d: code %s, want %s", algorithm, v.unix, got, want)
			}
			got, err := totp.Verify(seeds[algorithm], want, now, totp.Check{Params: params})
			if err != nil || got != (totp.Verification{Outcome: totp.Valid, Counter: uint64(v.unix / 30)}) {
				t.Errorf("%s at %d: Verify = %+v, %v; want valid at step %d", algorithm, v.unix, got, err, v.unix/30)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("12345678901234567890")
	params := totp.Defaults
	now := time.Unix(1111111111, 0)
	step := params.Counter(now)
	codeAt := func(drift int) string { return params.Code(secret, uint64(int64(step)+int64(drift))) }
	counter := func(c uint64) *uint64 { return &c }
	tests := []struct {
		name   string
		code   string
		window int
		last   *uint64
		want   totp.Verification
	}{
		{"current step", codeAt(0), 1, nil, totp.Verification{Outcome: totp.Valid, Counter: step}},
		{"one step behind", codeAt(-1), 1, nil, totp.Verification{Outcome: totp.Valid, Counter: step - 1, Drift: -1}},
		{"one step ahead", codeAt(1), 1, nil, totp.Verification{Outcome: totp.Valid, Counter: step + 1, Drift: 1}},
		{"two steps behind, window 1", codeAt(-2), 1, nil, totp.Verification{Outcome: totp.InvalidCode}},
		{"two steps behind, window 2", codeAt(-2), 2, nil, totp.Verification{Outcome: totp.Valid, Counter: step - 2, Drift: -2}},
		{"window 0 takes the current step", codeAt(0), 0, nil, totp.Verification{Outcome: totp.Valid, Counter: step}},
		{"window 0 refuses the last step", codeAt(-1), 0, nil, totp.Verification{Outcome: totp.InvalidCode}},
		{"ten steps ahead, window 10", codeAt(10), 10, nil, totp.Verification{Outcome: totp.Valid, Counter: step + 10, Drift: 10}},
		{"after the last counter", codeAt(0), 1, counter(step - 1), totp.Verification{Outcome: totp.Valid, Counter: step}},
		{"at the last counter", codeAt(0), 1, counter(step), totp.Verification{Outcome: totp.Replayed, Counter: step}},
		{"before the last counter", codeAt(-1), 1, counter(step), totp.Verification{Outcome: totp.Replayed, Counter: step - 1, Drift: -1}},
		{"ahead of the last counter", codeAt(1), 1, counter(step), totp.Verification{Outcome: totp.Valid, Counter: step + 1, Drift: 1}},
		{"wrong code", wrongCode(codeAt(-1), codeAt(0), codeAt(1)), 1, nil, totp.Verification{Outcome: totp.InvalidCode}},
		{"wrong code, replay protected", wrongCode(codeAt(-1), codeAt(0), codeAt(1)), 1, counter(step), totp.Verification{Outcome: totp.InvalidCode}},
		{"too short", codeAt(0)[:5], 1, nil, totp.Verification{Outcome: totp.InvalidCode}},
		{"too long", codeAt(0) + "0", 1, nil, totp.Verification{Outcome: totp.InvalidCode}},
		{"empty", "", 1, nil, totp.Verification{Outcome: totp.InvalidCode}},
		{"spaces", " " + codeAt(0), 1, nil, totp.Verification{Outcome: totp.InvalidCode}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := totp.Verify(secret, tt.code, now, totp.Check{Params: params, Window: tt.window, LastCounter: tt.last})
			if err != nil || got != tt.want {
				t.Errorf("Verify = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// wrongCode is a 6-digit code none of codes is.
func wrongCode(codes ...string) string {
	for _, candidate := range []string{"000000", "111111", "222222", "333333"} {
		if !strings.Contains(strings.Join(codes, " "), candidate) {
			return candidate
		}
	}
	panic("unreachable: four candidates, three codes")
}

// TestVerifyPrefersUnusedStep: when a code matches two steps (it happens,
// one time in a million), the one after the last counter wins.
func TestVerifyPrefersUnusedStep(t *testing.T) {
	params := totp.Params{Digits: 6, PeriodSeconds: 30}
	secret := []byte("12345678901234567890")
	// Find a step whose code repeats within the next 20 steps.
	for step := uint64(0); step < 5_000_000; step++ {
		code := params.Code(secret, step)
		for ahead := uint64(1); ahead <= 20; ahead++ {
			if params.Code(secret, step+ahead) != code {
				continue
			}
			window := int(ahead+1) / 2
			mid := step + uint64(window)
			now := time.Unix(int64(mid)*30, 0)
			check := totp.Check{Params: params, Window: window}
			last := step
			check.LastCounter = &last
			got, err := totp.Verify(secret, code, now, check)
			want := totp.Verification{Outcome: totp.Valid, Counter: step + ahead, Drift: int(step+ahead) - int(mid)}
			if err != nil || got != want {
				t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
			}
			return
		}
		if testing.Short() && step > 200_000 {
			t.Skip("no repeated code found in the short run")
		}
	}
	t.Fatal("no repeated code found")
}

func TestVerifyRefusesBadParameters(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, check := range []totp.Check{
		{Params: totp.Params{Digits: 5, PeriodSeconds: 30}},
		{Params: totp.Params{Digits: 9, PeriodSeconds: 30}},
		{Params: totp.Params{Digits: 6, PeriodSeconds: 0}},
		{Params: totp.Params{Digits: 6, PeriodSeconds: totp.MaxPeriodSeconds + 1}},
		{Params: totp.Params{Digits: 6, PeriodSeconds: 30, Algorithm: totp.SHA512 + 1}},
		{Params: totp.Defaults, Window: totp.MaxWindow + 1},
		{Params: totp.Defaults, Window: -1},
	} {
		if _, err := totp.Verify(secret, "123456", time.Unix(1e9, 0), check); !errors.Is(err, totp.ErrInvalidParameter) {
			t.Errorf("Verify with %+v: error %v, want ErrInvalidParameter", check, err)
		}
	}
}

func TestDecodeBase32(t *testing.T) {
	want := "Hello!\xde\xad\xbe\xef"
	for _, text := range []string{
		"JBSWY3DPEHPK3PXP",
		"jbswy3dpehpk3pxp",
		"JBSW Y3DP EHPK 3PXP",
		"JBSWY3DPEHPK3PXP======",
	} {
		got, err := totp.DecodeBase32([]byte(text))
		if err != nil || string(got) != want {
			t.Errorf("DecodeBase32(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
	for _, text := range []string{
		"", "JBSWY3DPEHPK3PX1", "JBSWY3DPE", "====", "JBSWY3DP-HPK3PXP",
		"JBSWY3DP\r\nEHPK3PXP", "JBSWY3DPEHPK3PXP\n", "AB\xff\xff\xff\xff\xff\xff", "JBSWY3DP\xc3\x89HPK3PXP",
	} {
		if _, err := totp.DecodeBase32([]byte(text)); !errors.Is(err, totp.ErrInvalidSecret) || strings.Contains(err.Error(), text) && text != "" {
			t.Errorf("DecodeBase32(%q): error %v, want ErrInvalidSecret not quoting the text", text, err)
		}
	}
	secret := []byte("12345678901234567890")
	if got, err := totp.DecodeBase32([]byte(totp.EncodeBase32(secret))); err != nil || string(got) != string(secret) {
		t.Errorf("DecodeBase32(EncodeBase32(s)) = %q, %v; want %q", got, err, secret)
	}
}

func TestDecodeHex(t *testing.T) {
	got, err := totp.DecodeHex([]byte("3132333435363738393031323334353637383930"))
	if err != nil || string(got) != "12345678901234567890" {
		t.Errorf("DecodeHex = %q, %v", got, err)
	}
	if got, err := totp.DecodeHex([]byte("ABCDEF")); err != nil || string(got) != "\xab\xcd\xef" {
		t.Errorf("DecodeHex(upper case) = %q, %v", got, err)
	}
	for _, text := range []string{"", "abc", "zz", "ab cd"} {
		if _, err := totp.DecodeHex([]byte(text)); !errors.Is(err, totp.ErrInvalidSecret) {
			t.Errorf("DecodeHex(%q): error %v, want ErrInvalidSecret", text, err)
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, err := totp.NewSecret(totp.DefaultSecretBytes)
	if err != nil || len(a) != 20 {
		t.Fatalf("NewSecret(20) = %d bytes, %v", len(a), err)
	}
	b, _ := totp.NewSecret(totp.DefaultSecretBytes)
	if string(a) == string(b) {
		t.Error("two secrets are equal")
	}
	if text := totp.EncodeBase32(a); len(text) != 32 || strings.ContainsAny(text, "=abcdefghijklmnopqrstuvwxyz") {
		t.Errorf("EncodeBase32 of 20 bytes = %q, want 32 upper-case characters without padding, as pyotp.random_base32", text)
	}
	for _, size := range []int{0, totp.MinSecretBytes - 1, totp.MaxSecretBytes + 1} {
		if _, err := totp.NewSecret(size); !errors.Is(err, totp.ErrInvalidParameter) {
			t.Errorf("NewSecret(%d): error %v, want ErrInvalidParameter", size, err)
		}
	}
}

func TestProvisioningURI(t *testing.T) {
	tests := []struct {
		enrolment totp.Enrolment
		want      string
	}{
		{
			totp.Enrolment{Params: totp.Defaults, AccountName: "alice@example.com", Issuer: "Example Inc"},
			"otpauth://totp/Example%20Inc:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Inc",
		},
		{
			totp.Enrolment{Params: totp.Defaults, AccountName: "bob"},
			"otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP",
		},
		{
			totp.Enrolment{Params: totp.Params{Digits: 8, PeriodSeconds: 60, Algorithm: totp.SHA256}, AccountName: "a+b&c=d", Issuer: "Ü"},
			"otpauth://totp/%C3%9C:a%2Bb%26c%3Dd?secret=JBSWY3DPEHPK3PXP&issuer=%C3%9C&algorithm=SHA256&digits=8&period=60",
		},
	}
	for _, tt := range tests {
		if err := tt.enrolment.Check(); err != nil {
			t.Errorf("%+v: Check: %v", tt.enrolment, err)
		}
		if got := tt.enrolment.ProvisioningURI("JBSWY3DPEHPK3PXP"); got != tt.want {
			t.Errorf("ProvisioningURI\n got %s\nwant %s", got, tt.want)
		}
	}
	for _, bad := range []totp.Enrolment{
		{Params: totp.Defaults},
		{Params: totp.Defaults, AccountName: "a:b"},
		{Params: totp.Defaults, AccountName: "a", Issuer: "x:y"},
		{Params: totp.Defaults, AccountName: strings.Repeat("a", 257)},
		{Params: totp.Params{Digits: 4, PeriodSeconds: 30}, AccountName: "a"},
	} {
		if err := bad.Check(); !errors.Is(err, totp.ErrInvalidParameter) {
			t.Errorf("%+v: Check = %v, want ErrInvalidParameter", bad, err)
		}
	}
}
