package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

func TestCreateTOTP(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	tests := []struct {
		name        string
		req         *fernetv1.CreateTOTPRequest
		secretBytes int
		query       url.Values
	}{
		{"defaults", &fernetv1.CreateTOTPRequest{AccountName: "alice@example.com", Issuer: "Example"}, 20,
			url.Values{"issuer": {"Example"}}},
		{"no issuer", &fernetv1.CreateTOTPRequest{AccountName: "bob"}, 20, url.Values{}},
		{"everything set", &fernetv1.CreateTOTPRequest{
			AccountName: "carol", Issuer: "Example", Digits: 8, PeriodSeconds: 60,
			Algorithm: fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA512, SecretBytes: 64,
		}, 64, url.Values{"issuer": {"Example"}, "digits": {"8"}, "period": {"60"}, "algorithm": {"SHA512"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.client.CreateTOTP(ctx(t), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetKeyId() != ts.primary.ID() {
				t.Errorf("key id %s, want the primary's %s", resp.GetKeyId(), ts.primary.ID())
			}
			opened, err := fernet.NewKeyring(ts.primary).Decrypt(resp.GetToken())
			if err != nil {
				t.Fatal(err)
			}
			text := string(opened.Plaintext)
			secret, err := totp.DecodeBase32(opened.Plaintext)
			if err != nil || len(secret) != tt.secretBytes || text != strings.ToUpper(text) || strings.Contains(text, "=") {
				t.Fatalf("the token holds %d bytes of secret (%v), want %d as upper-case base32 without padding", len(secret), err, tt.secretBytes)
			}
			uri, err := url.Parse(resp.GetProvisioningUri())
			if err != nil {
				t.Fatal(err)
			}
			query := uri.Query()
			if uri.Scheme != "otpauth" || uri.Host != "totp" || query.Get("secret") != text {
				t.Errorf("provisioning URI %s: want otpauth://totp/ with the token's secret", uri.Redacted())
			}
			query.Del("secret")
			for name := range tt.query {
				if query.Get(name) != tt.query.Get(name) {
					t.Errorf("URI parameter %s = %q, want %q", name, query.Get(name), tt.query.Get(name))
				}
			}
			if len(query) != len(tt.query) {
				t.Errorf("URI parameters %v, want %v", query, tt.query)
			}
		})
	}
	a, _ := ts.client.CreateTOTP(ctx(t), &fernetv1.CreateTOTPRequest{AccountName: "a"})
	b, _ := ts.client.CreateTOTP(ctx(t), &fernetv1.CreateTOTPRequest{AccountName: "a"})
	if a.GetProvisioningUri() == b.GetProvisioningUri() {
		t.Error("two enrolments got the same secret")
	}
	if got := ts.metric(t, "fernet_operations_total", "operation", operationCreate, "outcome", "ok"); got != 5 {
		t.Errorf("fernet_operations_total{operation=create_totp,outcome=ok} = %v, want 5", got)
	}
}

func TestCreateTOTPRefusesBadParameters(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	for _, req := range []*fernetv1.CreateTOTPRequest{
		{},
		{AccountName: "a:b"},
		{AccountName: "a", Issuer: "x:y"},
		{AccountName: strings.Repeat("a", 300)},
		{AccountName: "a", Digits: 5},
		{AccountName: "a", Digits: 9},
		{AccountName: "a", PeriodSeconds: totp.MaxPeriodSeconds + 1},
		{AccountName: "a", Algorithm: 42},
		{AccountName: "a", SecretBytes: totp.MinSecretBytes - 1},
		{AccountName: "a", SecretBytes: totp.MaxSecretBytes + 1},
	} {
		_, err := ts.client.CreateTOTP(ctx(t), req)
		wantReason(t, err, reasons.InvalidTOTPParameter)
	}
	if got := ts.metric(t, "fernet_operations_total", "operation", operationCreate, "outcome", "error"); got != 10 {
		t.Errorf("fernet_operations_total{operation=create_totp,outcome=error} = %v, want 10", got)
	}
}

// TestCreateTOTPHonoursThePlaintextLimit: the secret is a plaintext like
// any other.
func TestCreateTOTPHonoursThePlaintextLimit(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 32, MaxBatchItems: 10})
	if _, err := ts.client.CreateTOTP(ctx(t), &fernetv1.CreateTOTPRequest{AccountName: "a"}); err != nil {
		t.Fatalf("a 32-character secret: %v", err)
	}
	_, err := ts.client.CreateTOTP(ctx(t), &fernetv1.CreateTOTPRequest{AccountName: "a", SecretBytes: 32})
	wantReason(t, err, reasons.PlaintextTooLarge)
}
