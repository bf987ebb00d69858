package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// slices is how many turns the sidecar and the echo server take at each
// load within a round: a burst of load from elsewhere on the machine then
// falls on both, not on whichever was measured during it.
const loadSlices = 4

// measured is what one load did in its measured window.
type measured struct {
	n         int64         // calls or items completed
	elapsed   time.Duration // the window
	cpu       time.Duration // the server process's CPU time in the window
	latencies []time.Duration
}

func (m *measured) add(o measured) {
	m.n += o.n
	m.elapsed += o.elapsed
	m.cpu += o.cpu
	m.latencies = append(m.latencies, o.latencies...)
}

func (m measured) perSecond() float64 { return float64(m.n) / m.elapsed.Seconds() }

// cpuPer is the server's CPU time per call or item, in µs.
func (m measured) cpuPer() float64 { return m.cpu.Seconds() * 1e6 / float64(max(m.n, 1)) }

// cores is how many cores the server kept busy.
func (m measured) cores() float64 { return m.cpu.Seconds() / m.elapsed.Seconds() }

// p50 is the median latency, in µs.
func (m measured) p50() float64 {
	if len(m.latencies) == 0 {
		return 0
	}
	l := slices.Clone(m.latencies)
	slices.Sort(l)
	return l[len(l)/2].Seconds() * 1e6
}

// alternate runs load on each server in turn, loadSlices times, each turn
// with a share of warmup and dur, and adds up what each server did.
func alternate(ctx context.Context, servers []*server, warmup, dur time.Duration, load func(*server, time.Duration, time.Duration) (measured, error)) (map[string]measured, error) {
	total := map[string]measured{}
	for range loadSlices {
		for _, s := range servers {
			m, err := load(s, warmup/loadSlices, dur/loadSlices)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			t := total[s.name]
			t.add(m)
			total[s.name] = t
		}
	}
	return total, nil
}

// unaryLoad has callers goroutines call Decrypt back to back on the
// server's one connection (as an app shares its one channel) for warmup,
// then for dur, and reports the second part. With one caller it records
// every latency. The sidecar's first answer is checked.
func unaryLoad(ctx context.Context, s *server, w *workload, callers int, warmup, dur time.Duration) (measured, error) {
	first, err := s.client.Decrypt(ctx, w.decryptRequest)
	if err == nil && s.name == "sidecar" {
		err = w.checkDecrypt(first)
	}
	if err != nil {
		return measured{}, err
	}
	var latencies []time.Duration // one caller only
	return runLoad(ctx, s, callers, warmup, dur, func(counting bool) (int64, error) {
		start := time.Now()
		if _, err := s.client.Decrypt(ctx, w.decryptRequest); err != nil {
			return 0, err
		}
		if counting && callers == 1 {
			latencies = append(latencies, time.Since(start))
		}
		return 1, nil
	}, &latencies)
}

// batchLoad has callers goroutines send the workload's batch back to
// back, as a bulk job does, and reports the items of the second part. The
// sidecar's first answer is checked item by item.
func batchLoad(ctx context.Context, s *server, w *workload, callers int, warmup, dur time.Duration) (measured, error) {
	resp, err := s.client.ReEncryptBatch(ctx, w.batchRequest)
	switch {
	case err != nil:
	case s.name == "sidecar":
		err = w.checkBatch(resp)
	case len(resp.GetResults()) != len(w.oldTokens):
		err = fmt.Errorf("%d results for %d tokens", len(resp.GetResults()), len(w.oldTokens))
	}
	if err != nil {
		return measured{}, err
	}
	return runLoad(ctx, s, callers, warmup, dur, func(bool) (int64, error) {
		_, err := s.client.ReEncryptBatch(ctx, w.batchRequest)
		return int64(len(w.oldTokens)), err
	}, nil)
}

// runLoad has callers goroutines run call back to back for warmup, then
// for dur, and counts what the calls that ended in the second part did.
func runLoad(ctx context.Context, s *server, callers int, warmup, dur time.Duration, call func(counting bool) (int64, error), latencies *[]time.Duration) (measured, error) {
	var (
		measuring, stop atomic.Bool
		done            atomic.Int64
		firstErr        error
		errOnce         sync.Once
		wg              sync.WaitGroup
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n, err := call(measuring.Load())
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if measuring.Load() {
					done.Add(n)
				}
			}
		}()
	}
	finish := func() { stop.Store(true); wg.Wait() }
	if err := sleep(ctx, warmup); err != nil {
		finish()
		return measured{}, err
	}
	cpu0, err := s.cpuTime()
	if err != nil {
		finish()
		return measured{}, err
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
		return measured{}, firstErr
	case ctx.Err() != nil:
		return measured{}, ctx.Err()
	case err != nil:
		return measured{}, err
	}
	m := measured{n: done.Load(), elapsed: elapsed, cpu: cpu1 - cpu0}
	if latencies != nil {
		m.latencies = *latencies
	}
	return m, nil
}
