package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

func TestLargeBatchUsesEveryCPUAndKeepsOrder(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one CPU: nothing to spread over")
	}
	service := newService(t)
	items := make([]int, 4*itemsPerWorker)
	for i := range items {
		items[i] = i
	}
	var running, mostAtOnce atomic.Int64
	process := func(_ call, item int, _ *tally) (int, error) {
		now := running.Add(1)
		for seen := mostAtOnce.Load(); now > seen && !mostAtOnce.CompareAndSwap(seen, now); seen = mostAtOnce.Load() {
		}
		time.Sleep(50 * time.Microsecond) // long enough for workers to overlap
		running.Add(-1)
		return item * 2, nil
	}
	result := func(out int, _ *fernetv1.ItemError) int { return out }
	results, err := runBatch(context.Background(), service, service.metrics.encrypt, nil, items, process, result)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range results {
		if got != 2*i {
			t.Fatalf("result %d = %d, want %d: results must stay in request order", i, got, 2*i)
		}
	}
	if mostAtOnce.Load() < 2 {
		t.Fatalf("at most %d items ran at once: a large batch must use more than one CPU", mostAtOnce.Load())
	}
}

func TestSmallBatchRunsOnTheCallersGoroutine(t *testing.T) {
	service := newService(t)
	before := runtime.NumGoroutine()
	var mostGoroutines atomic.Int64
	process := func(_ call, item int, _ *tally) (int, error) {
		mostGoroutines.Store(max(mostGoroutines.Load(), int64(runtime.NumGoroutine())))
		return item, nil
	}
	if _, err := runBatch(context.Background(), service, service.metrics.encrypt, nil, make([]int, itemsPerWorker-1), process,
		func(out int, _ *fernetv1.ItemError) int { return out }); err != nil {
		t.Fatal(err)
	}
	if mostGoroutines.Load() > int64(before) {
		t.Fatalf("a small batch started goroutines (%d, before %d)", mostGoroutines.Load(), before)
	}
}

func TestBatchMetricsCountEveryItem(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	now := uint64(time.Now().Unix())
	primary := testkeys.Token(t, ts.primary, "secret", now)
	old := testkeys.Token(t, ts.old, "secret", now)
	unknown := testkeys.Token(t, testkeys.New(t), "secret", now)
	expired := testkeys.Token(t, ts.primary, "secret", now-3600)
	// Spread over several shares and workers, in a mix.
	counts := map[string]int{primary: 300, old: 200, unknown: 50, expired: 40, "not a token": 10}
	var tokens []string
	for i := 0; len(tokens) < 600; i++ {
		for token, n := range counts {
			if i < n {
				tokens = append(tokens, token)
			}
		}
	}
	resp, err := ts.client.DecryptBatch(ctx(t), &fernetv1.DecryptBatchRequest{Tokens: tokens, TtlSeconds: proto.Int64(60)})
	if err != nil || len(resp.GetResults()) != len(tokens) {
		t.Fatalf("DecryptBatch = %d results, %v; want %d", len(resp.GetResults()), err, len(tokens))
	}
	shares := (len(tokens) + itemsPerShare - 1) / itemsPerShare
	for _, want := range []struct {
		name   string
		labels []string
		value  int
	}{
		{"fernet_operations_total", []string{"operation", "decrypt", "outcome", "ok"}, 500},
		{"fernet_operations_total", []string{"operation", "decrypt", "outcome", "error"}, 100},
		{"fernet_decryptions_total", []string{"key_role", keyRolePrimary}, 300},
		{"fernet_decryptions_total", []string{"key_role", keyRoleDecryptOnly}, 200},
		{"fernet_decrypt_failures_total", []string{"reason", "invalid_signature"}, 50},
		{"fernet_decrypt_failures_total", []string{"reason", "expired"}, 40},
		{"fernet_decrypt_failures_total", []string{"reason", "malformed"}, 10},
		{"fernet_decrypt_failures_total", []string{"reason", "future_timestamp"}, 0},
		{"fernet_operation_duration_seconds", []string{"operation", "decrypt"}, shares}, // one mean per share
	} {
		if got := ts.metric(t, want.name, want.labels...); got != float64(want.value) {
			t.Errorf("%s%v = %v, want %d", want.name, want.labels, got, want.value)
		}
	}
}
