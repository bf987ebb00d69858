package server

import (
	"bytes"
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

func TestEncrypt(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	resp, err := ts.client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("JBSWY3DPEHPK3PXP")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetKeyId() != ts.primary.ID() {
		t.Fatalf("key_id = %s, want the primary %s", resp.GetKeyId(), ts.primary.ID())
	}
	opened, err := fernet.NewKeyring(ts.primary).Decrypt(resp.GetToken())
	if err != nil || string(opened.Plaintext) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("token opens under the primary key to %q, %v", opened.Plaintext, err)
	}
	if got := ts.metric(t, "fernet_operations_total", "operation", "encrypt", "outcome", "ok"); got != 1 {
		t.Fatalf("fernet_operations_total{encrypt,ok} = %v, want 1", got)
	}
}

func TestEncryptRefusesAnOversizedPlaintext(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 16, MaxBatchItems: 10})
	plaintext := bytes.Repeat([]byte("s"), 17)
	_, err := ts.client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: plaintext})
	wantReason(t, err, reasons.PlaintextTooLarge, string(plaintext))
	if got := ts.metric(t, "fernet_operations_total", "operation", "encrypt", "outcome", "error"); got != 1 {
		t.Fatalf("fernet_operations_total{encrypt,error} = %v, want 1", got)
	}
}

func TestEncryptBatch(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 16, MaxBatchItems: 3})
	resp, err := ts.client.EncryptBatch(ctx(t), &fernetv1.EncryptBatchRequest{
		Plaintexts: [][]byte{[]byte("first"), bytes.Repeat([]byte("x"), 17), {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	results := resp.GetResults()
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	keyring := fernet.NewKeyring(ts.primary)
	for i, want := range []string{"first", "", ""} {
		if i == 1 {
			if reason := results[i].GetError().GetReason(); reason != reasons.PlaintextTooLarge {
				t.Fatalf("item 1 reason = %q, want %s", reason, reasons.PlaintextTooLarge)
			}
			continue
		}
		opened, err := keyring.Decrypt(results[i].GetOk().GetToken())
		if err != nil || string(opened.Plaintext) != want {
			t.Fatalf("item %d opens to %q, %v; want %q", i, opened.Plaintext, err, want)
		}
	}
}

func TestBatchTooLargeProcessesNothing(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 16, MaxBatchItems: 2})
	_, err := ts.client.EncryptBatch(ctx(t), &fernetv1.EncryptBatchRequest{Plaintexts: [][]byte{{1}, {2}, {3}}})
	wantReason(t, err, reasons.BatchTooLarge)
	for _, outcome := range []string{"ok", "error"} {
		if got := ts.metric(t, "fernet_operations_total", "operation", "encrypt", "outcome", outcome); got != 0 {
			t.Fatalf("fernet_operations_total{encrypt,%s} = %v: a refused batch must process nothing", outcome, got)
		}
	}
}

func TestBatchStopsWhenTheCallerHasGone(t *testing.T) {
	service := newService(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := runBatch(gone, service, service.metrics.encrypt, nil, [][]byte{{1}}, service.encrypt, encryptBatchResult)
	if status.Code(err) != codes.Canceled {
		t.Fatalf("runBatch with a cancelled context = %v, want CANCELED", err)
	}
	if processed := testutil.ToFloat64(service.metrics.encrypt.ok); processed != 0 {
		t.Fatalf("%v items processed for a caller that has gone", processed)
	}
}
