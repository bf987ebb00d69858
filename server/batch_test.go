package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

func TestLargeBatchUsesEveryCPUAndKeepsOrder(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one CPU: nothing to spread over")
	}
	keys := &swappableKeys{}
	keys.Store(fernet.NewKeyring(newKey(t)))
	service := NewService(keys, DefaultLimits, NewMetrics(prometheus.NewRegistry()), "test")
	items := make([]int, 4*itemsPerWorker)
	for i := range items {
		items[i] = i
	}
	var running, mostAtOnce atomic.Int64
	process := func(item int) (int, error) {
		now := running.Add(1)
		for seen := mostAtOnce.Load(); now > seen && !mostAtOnce.CompareAndSwap(seen, now); seen = mostAtOnce.Load() {
		}
		time.Sleep(50 * time.Microsecond) // long enough for workers to overlap
		running.Add(-1)
		return item * 2, nil
	}
	result := func(out int, _ *fernetv1.ItemError) int { return out }
	results, err := runBatch(context.Background(), service, operationEncrypt, items, process, result)
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
	keys := &swappableKeys{}
	keys.Store(fernet.NewKeyring(newKey(t)))
	service := NewService(keys, DefaultLimits, NewMetrics(prometheus.NewRegistry()), "test")
	before := runtime.NumGoroutine()
	var mostGoroutines atomic.Int64
	process := func(item int) (int, error) {
		mostGoroutines.Store(max(mostGoroutines.Load(), int64(runtime.NumGoroutine())))
		return item, nil
	}
	if _, err := runBatch(context.Background(), service, operationEncrypt, make([]int, itemsPerWorker-1), process,
		func(out int, _ *fernetv1.ItemError) int { return out }); err != nil {
		t.Fatal(err)
	}
	if mostGoroutines.Load() > int64(before) {
		t.Fatalf("a small batch started goroutines (%d, before %d)", mostGoroutines.Load(), before)
	}
}
