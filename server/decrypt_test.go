package server

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

func TestDecrypt(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	made := uint64(time.Now().Unix())
	tests := []struct {
		name               string
		token              string
		wantKeyID          string
		wantNeedsReencrypt bool
		wantRole           string
	}{
		{"under the primary key", tokenUnder(t, ts.primary, "secret", made), ts.primary.ID(), false, keyRolePrimary},
		{"under the old key", tokenUnder(t, ts.old, "secret", made), ts.old.ID(), true, keyRoleDecryptOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.metric(t, "fernet_decryptions_total", "key_role", tt.wantRole)
			resp, err := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: tt.token, TtlSeconds: proto.Int64(60)})
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.GetPlaintext()) != "secret" || resp.GetKeyId() != tt.wantKeyID ||
				resp.GetTimestamp() != made || resp.GetNeedsReencrypt() != tt.wantNeedsReencrypt {
				t.Fatalf("Decrypt = %v, want secret, key %s, timestamp %d, needs_reencrypt %v",
					resp, tt.wantKeyID, made, tt.wantNeedsReencrypt)
			}
			if got := ts.metric(t, "fernet_decryptions_total", "key_role", tt.wantRole); got != before+1 {
				t.Fatalf("fernet_decryptions_total{key_role=%s} = %v, want %v", tt.wantRole, got, before+1)
			}
		})
	}
}

func TestDecryptFailures(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 64, MaxBatchItems: 10})
	now := uint64(time.Now().Unix())
	tests := []struct {
		name   string
		token  string
		ttl    *int64
		reason string
	}{
		{"garbage", "not a token", nil, reasons.Malformed},
		{"non-ASCII", "gAAAAé", nil, reasons.Malformed},
		{"unknown key", tokenUnder(t, newKey(t), "secret", now), nil, reasons.InvalidSignature},
		{"expired", tokenUnder(t, ts.primary, "secret", now-120), proto.Int64(60), reasons.Expired},
		{"from the future", tokenUnder(t, ts.primary, "secret", now+3600), proto.Int64(60), reasons.FutureTimestamp},
		{"too large", strings.Repeat("A", 1000), nil, reasons.TokenTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			label := metricLabel(tt.reason)
			before := ts.metric(t, "fernet_decrypt_failures_total", "reason", label)
			_, err := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: tt.token, TtlSeconds: tt.ttl})
			wantReason(t, err, tt.reason, tt.token, "secret")
			if got := ts.metric(t, "fernet_decrypt_failures_total", "reason", label); got != before+1 {
				t.Fatalf("fernet_decrypt_failures_total{reason=%s} = %v, want %v", label, got, before+1)
			}
		})
	}
}

func TestDecryptWithoutTTLDoesNoTimeChecks(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	for _, made := range []uint64{0, 1 << 62} {
		resp, err := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: tokenUnder(t, ts.primary, "secret", made)})
		if err != nil || resp.GetTimestamp() != made {
			t.Fatalf("timestamp %d: Decrypt = %v, %v; want it to decrypt", made, resp, err)
		}
	}
}

func TestDecryptBatch(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	now := uint64(time.Now().Unix())
	resp, err := ts.client.DecryptBatch(ctx(t), &fernetv1.DecryptBatchRequest{
		Tokens: []string{
			tokenUnder(t, ts.primary, "one", now),
			tokenUnder(t, ts.primary, "two", now-3600),
			"garbage",
			tokenUnder(t, ts.old, "four", now),
		},
		TtlSeconds: proto.Int64(60),
	})
	if err != nil {
		t.Fatal(err)
	}
	results := resp.GetResults()
	if len(results) != 4 {
		t.Fatalf("%d results, want 4", len(results))
	}
	if string(results[0].GetOk().GetPlaintext()) != "one" || results[0].GetOk().GetNeedsReencrypt() {
		t.Errorf("item 0 = %v, want one under the primary key", results[0])
	}
	if results[1].GetError().GetReason() != reasons.Expired {
		t.Errorf("item 1 = %v, want EXPIRED: the batch TTL applies to every item", results[1])
	}
	if results[2].GetError().GetReason() != reasons.Malformed {
		t.Errorf("item 2 = %v, want MALFORMED", results[2])
	}
	if string(results[3].GetOk().GetPlaintext()) != "four" || !results[3].GetOk().GetNeedsReencrypt() {
		t.Errorf("item 3 = %v, want four, needing re-encryption", results[3])
	}
}
