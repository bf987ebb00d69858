package server

import (
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

func TestReEncrypt(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	underPrimary := tokenUnder(t, ts.primary, "secret", 1234)
	tests := []struct {
		name        string
		token       string
		wantChanged bool
	}{
		{"old key moves to the primary", tokenUnder(t, ts.old, "secret", 1234), true},
		{"canonical under the primary is left alone", underPrimary, false},
		{"line-wrapped under the primary is rewritten", underPrimary[:40] + "\n" + underPrimary[40:], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.client.ReEncrypt(ctx(t), &fernetv1.ReEncryptRequest{Token: tt.token})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetChanged() != tt.wantChanged || resp.GetKeyId() != ts.primary.ID() {
				t.Fatalf("ReEncrypt = %v, want changed %v under %s", resp, tt.wantChanged, ts.primary.ID())
			}
			if !tt.wantChanged && resp.GetToken() != tt.token {
				t.Fatal("an unchanged token must come back byte for byte")
			}
			opened, err := fernet.NewKeyring(ts.primary).Decrypt(resp.GetToken())
			if err != nil || string(opened.Plaintext) != "secret" || opened.Timestamp != 1234 {
				t.Fatalf("new token opens under the primary alone to %+v, %v; want secret at 1234", opened, err)
			}
		})
	}
}

func TestReEncryptRefusesWhatItCannotDecrypt(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	token := tokenUnder(t, newKey(t), "secret", 1234)
	_, err := ts.client.ReEncrypt(ctx(t), &fernetv1.ReEncryptRequest{Token: token})
	wantReason(t, err, reasons.InvalidSignature, token, "secret")
	if got := ts.metric(t, "fernet_decrypt_failures_total", "reason", "invalid_signature"); got != 1 {
		t.Fatalf("fernet_decrypt_failures_total{invalid_signature} = %v, want 1", got)
	}
}

func TestReEncryptBatch(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	underPrimary := tokenUnder(t, ts.primary, "b", 2)
	resp, err := ts.client.ReEncryptBatch(ctx(t), &fernetv1.ReEncryptBatchRequest{
		Tokens: []string{tokenUnder(t, ts.old, "a", 1), underPrimary, "garbage"},
	})
	if err != nil {
		t.Fatal(err)
	}
	results := resp.GetResults()
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	if !results[0].GetOk().GetChanged() || results[1].GetOk().GetChanged() || results[1].GetOk().GetToken() != underPrimary {
		t.Fatalf("results = %v: want item 0 changed, item 1 unchanged", results)
	}
	if results[2].GetError().GetReason() != reasons.Malformed {
		t.Fatalf("item 2 = %v, want MALFORMED", results[2])
	}
	if got := ts.metric(t, "fernet_decryptions_total", "key_role", keyRoleDecryptOnly); got != 1 {
		t.Fatalf("fernet_decryptions_total{decrypt_only} = %v, want 1", got)
	}
}
