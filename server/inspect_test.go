package server

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// TestInspectTellsWhatDecryptDoes: for tokens of every kind, Inspect and
// InspectBatch answer exactly as Decrypt and DecryptBatch do, less the
// plaintext.
func TestInspectTellsWhatDecryptDoes(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 64, MaxBatchItems: 10})
	now := uint64(time.Now().Unix())
	tokens := []string{
		testkeys.Token(t, ts.primary, "secret", now),
		testkeys.Token(t, ts.old, "secret", now-30),
		testkeys.Token(t, ts.primary, "secret", now-3600),
		testkeys.Token(t, ts.primary, "secret", now+3600),
		testkeys.Token(t, testkeys.New(t), "secret", now),
		"not a token",
		strings.Repeat("A", 1000),
	}
	for _, ttl := range []*int64{nil, proto.Int64(60)} {
		for _, token := range tokens {
			decrypted, decryptErr := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: token, TtlSeconds: ttl})
			inspected, err := ts.client.Inspect(ctx(t), &fernetv1.InspectRequest{Token: token, TtlSeconds: ttl})
			if decryptErr != nil {
				wantReason(t, err, errorReason(status.Convert(decryptErr)), token)
				continue
			}
			if err != nil {
				t.Fatalf("Inspect: %v; Decrypt succeeded", err)
			}
			want := &fernetv1.InspectResponse{KeyId: decrypted.GetKeyId(), Timestamp: decrypted.GetTimestamp(), NeedsReencrypt: decrypted.GetNeedsReencrypt()}
			if !proto.Equal(inspected, want) {
				t.Errorf("Inspect = %v, want %v", inspected, want)
			}
		}

		decrypted, err := ts.client.DecryptBatch(ctx(t), &fernetv1.DecryptBatchRequest{Tokens: tokens, TtlSeconds: ttl})
		if err != nil {
			t.Fatal(err)
		}
		inspected, err := ts.client.InspectBatch(ctx(t), &fernetv1.InspectBatchRequest{Tokens: tokens, TtlSeconds: ttl})
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range decrypted.GetResults() {
			got := inspected.GetResults()[i]
			if d.GetError() != nil {
				if got.GetError().GetReason() != d.GetError().GetReason() {
					t.Errorf("item %d: InspectBatch %v, DecryptBatch %v", i, got, d)
				}
				continue
			}
			want := &fernetv1.InspectResponse{KeyId: d.GetOk().GetKeyId(), Timestamp: d.GetOk().GetTimestamp(), NeedsReencrypt: d.GetOk().GetNeedsReencrypt()}
			if !proto.Equal(got.GetOk(), want) {
				t.Errorf("item %d: InspectBatch %v, want %v", i, got, want)
			}
		}
	}
	if _, err := ts.client.InspectBatch(ctx(t), &fernetv1.InspectBatchRequest{Tokens: make([]string, 11)}); err == nil {
		t.Error("InspectBatch took more items than the limit")
	} else {
		wantReason(t, err, reasons.BatchTooLarge)
	}
}

func TestInspectMetrics(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	before := ts.metric(t, "fernet_decryptions_total", "key_role", keyRoleDecryptOnly)
	_, err := ts.client.InspectBatch(ctx(t), &fernetv1.InspectBatchRequest{Tokens: []string{
		testkeys.Token(t, ts.old, "secret", 1), "garbage",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ts.metric(t, "fernet_operations_total", "operation", operationInspect, "outcome", "ok"); got != 1 {
		t.Errorf("fernet_operations_total{operation=inspect,outcome=ok} = %v, want 1", got)
	}
	if got := ts.metric(t, "fernet_operations_total", "operation", operationInspect, "outcome", "error"); got != 1 {
		t.Errorf("fernet_operations_total{operation=inspect,outcome=error} = %v, want 1", got)
	}
	if got := ts.metric(t, "fernet_decryptions_total", "key_role", keyRoleDecryptOnly); got != before+1 {
		t.Errorf("fernet_decryptions_total{key_role=decrypt_only} = %v, want %v: a check shows what still needs the old key", got, before+1)
	}
}

// TestInspectBatchAuditNamesKeys: the audit line of an InspectBatch names
// the keys that verified its tokens, once each, as the other batches'.
func TestInspectBatchAuditNamesKeys(t *testing.T) {
	ok := func(id string) *fernetv1.InspectBatchResult {
		return &fernetv1.InspectBatchResult{Result: &fernetv1.InspectBatchResult_Ok{Ok: &fernetv1.InspectResponse{KeyId: id}}}
	}
	failed := &fernetv1.InspectBatchResult{Result: &fernetv1.InspectBatchResult_Error{Error: &fernetv1.ItemError{Reason: reasons.Malformed}}}
	resp := &fernetv1.InspectBatchResponse{Results: []*fernetv1.InspectBatchResult{ok("a"), failed, ok("b"), ok("a"), ok("c")}}
	got := keyIDsOf(resp, func(id string) string { return id })
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("key ids %v, want [a b c]", got)
	}
	// Derived keys (b and c here) show as one "derived".
	hidden := func(id string) string {
		if id == "b" || id == "c" {
			return "derived"
		}
		return id
	}
	if got := keyIDsOf(resp, hidden); strings.Join(got, ",") != "a,derived" {
		t.Errorf("key ids with b and c derived %v, want [a derived]", got)
	}
}
