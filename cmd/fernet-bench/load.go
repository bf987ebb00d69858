package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// unaryLoad has callers goroutines call Decrypt back to back on the
// server's one connection (as an app shares its one channel) for warmup,
// then for dur, and returns the completed calls per second of the second
// part, and the server's CPU time per call then. With one caller it also
// returns the median latency. The sidecar's first answer is checked.
func unaryLoad(ctx context.Context, s *server, w *workload, callers int, warmup, dur time.Duration) (perSecond float64, cpuPerCall, p50 time.Duration, err error) {
	client, req := s.client, w.decryptRequest
	first, err := client.Decrypt(ctx, req)
	if err != nil {
		return 0, 0, 0, err
	}
	if s.name == "sidecar" {
		if err := w.checkDecrypt(first); err != nil {
			return 0, 0, 0, err
		}
	}
	var (
		measuring, stop atomic.Bool
		calls           atomic.Int64
		firstErr        error
		errOnce         sync.Once
		wg              sync.WaitGroup
		latencies       []time.Duration // one caller only
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				if _, err := client.Decrypt(ctx, req); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if measuring.Load() {
					calls.Add(1)
					if callers == 1 {
						latencies = append(latencies, time.Since(start))
					}
				}
			}
		}()
	}
	finish := func() { stop.Store(true); wg.Wait() }
	if err := sleep(ctx, warmup); err != nil {
		finish()
		return 0, 0, 0, err
	}
	cpu0, err := s.cpuTime()
	if err != nil {
		finish()
		return 0, 0, 0, err
	}
	measuring.Store(true)
	t0 := time.Now()
	_ = sleep(ctx, dur)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1, err := s.cpuTime()
	finish()
	switch {
	case firstErr != nil:
		return 0, 0, 0, firstErr
	case ctx.Err() != nil:
		return 0, 0, 0, ctx.Err()
	case err != nil:
		return 0, 0, 0, err
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		p50 = latencies[len(latencies)/2]
	}
	n := calls.Load()
	return float64(n) / elapsed.Seconds(), (cpu1 - cpu0) / time.Duration(max(n, 1)), p50, nil
}

// batchLoad has callers goroutines send the workload's batch back to
// back, as a bulk job does, and returns the items per second, how many
// cores the server process kept busy meanwhile, and its CPU time per item.
// The sidecar's first answer is checked item by item.
func batchLoad(ctx context.Context, s *server, w *workload, callers int, warmup, dur time.Duration) (itemsPerSecond, cores float64, cpuPerItem time.Duration, err error) {
	resp, err := s.client.ReEncryptBatch(ctx, w.batchRequest)
	if err != nil {
		return 0, 0, 0, err
	}
	if s.name == "sidecar" {
		if err := w.checkBatch(resp); err != nil {
			return 0, 0, 0, err
		}
	} else if len(resp.GetResults()) != len(w.oldTokens) {
		return 0, 0, 0, fmt.Errorf("%d results for %d tokens", len(resp.GetResults()), len(w.oldTokens))
	}
	var (
		measuring, stop atomic.Bool
		batches         atomic.Int64
		firstErr        error
		errOnce         sync.Once
		wg              sync.WaitGroup
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := s.client.ReEncryptBatch(ctx, w.batchRequest); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if measuring.Load() {
					batches.Add(1)
				}
			}
		}()
	}
	finish := func() { stop.Store(true); wg.Wait() }
	if err := sleep(ctx, warmup); err != nil {
		finish()
		return 0, 0, 0, err
	}
	cpu0, err := s.cpuTime()
	if err != nil {
		finish()
		return 0, 0, 0, err
	}
	measuring.Store(true)
	t0 := time.Now()
	_ = sleep(ctx, dur)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1, err := s.cpuTime()
	finish()
	switch {
	case firstErr != nil:
		return 0, 0, 0, firstErr
	case ctx.Err() != nil:
		return 0, 0, 0, ctx.Err()
	case err != nil:
		return 0, 0, 0, err
	}
	items := batches.Load() * int64(len(w.oldTokens))
	return float64(items) / elapsed.Seconds(), (cpu1 - cpu0).Seconds() / elapsed.Seconds(), (cpu1 - cpu0) / time.Duration(max(items, 1)), nil
}
