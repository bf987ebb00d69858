package rotation

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// Run states, the values of fernet_rotation_state's state label.
const (
	StateRunning     = "running"
	StateComplete    = "complete"    // every row is under the primary key
	StateRemaining   = "remaining"   // the walk finished, but rows are left off the primary key, or it changed meanwhile
	StateFailed      = "failed"      // an error stopped the run
	StateInterrupted = "interrupted" // stopped on request; resumable
)

var runStates = []string{StateRunning, StateComplete, StateRemaining, StateFailed, StateInterrupted}

// PushInterval is the least time between two progress pushes: a run of
// small batches does not send a request per batch.
const PushInterval = time.Second

// PushTimeout bounds each push. Pushes happen beside the run, never in its
// way: a Pushgateway that is slow or gone costs the run at most two of
// these, at the end (the push in flight, then the outcome's).
const PushTimeout = 2 * time.Second

// Pushgateway reports a run to a Prometheus Pushgateway, the way Prometheus
// documents for batch jobs: the run's progress after each batch (at most
// every PushInterval) and its outcome at the end, in one group per job,
// table and column (and shard). It pushes with POST, which replaces only the metrics it
// sends, so fernet_rotation_last_success_timestamp_seconds stays from the
// last run that succeeded until another one does. docs/deployment.md lists
// the metrics.
//
// The pushes run in a goroutine of their own, so the run never waits for
// the Pushgateway between batches. Each push sends the state at the time
// it is made, so while one is in flight, the batches after it coalesce
// into the next.
type Pushgateway struct {
	pusher *push.Pusher
	now    func() time.Time
	// pushed is called, in the pushing goroutine, after each push.
	pushed func(error)

	start sync.Once
	wake  chan struct{} // a push is wanted; holds at most one
	final chan struct{} // closed by Finish: push the outcome, then end
	done  chan struct{} // closed when the pushing goroutine has ended

	mu         sync.Mutex // Collect runs in the pushing goroutine, the setters in the job
	state      string
	toScan     int64
	counts     runCounts
	progressed time.Time
	finished   time.Time // zero while running
	lastWanted time.Time // when a push was last asked for
}

// NewPushgateway reports to the Pushgateway at url (http://host:9091) under
// job, grouped by table and column, and by shard ("i/n") when the run is
// one of several shards, so that the shards do not overwrite each other.
// pushed, if not nil, is told how each push went, from another goroutine.
func NewPushgateway(url, job, table, column string, shard Shard, pushed func(error)) *Pushgateway {
	p := &Pushgateway{
		now: time.Now, pushed: pushed, state: StateRunning,
		wake: make(chan struct{}, 1), final: make(chan struct{}), done: make(chan struct{}),
	}
	p.pusher = push.New(url, job).
		Grouping("table", table).
		Grouping("column", column)
	if shard.Count > 1 {
		p.pusher = p.pusher.Grouping("shard", shard.String())
	}
	p.pusher = p.pusher.
		Client(&http.Client{Timeout: PushTimeout}).
		Collector(pushCollector{p})
	return p
}

// Start reports a run that has begun and scanned nothing yet.
func (p *Pushgateway) Start() {
	p.mu.Lock()
	p.state, p.progressed = StateRunning, p.now()
	p.mu.Unlock()
	p.want()
}

// Progress records the state after a batch, and asks for a push unless
// the last one was asked for less than PushInterval ago. It never waits
// for the Pushgateway.
func (p *Pushgateway) Progress(pr Progress) {
	p.mu.Lock()
	now := p.now()
	p.toScan, p.progressed = pr.Total, now
	if pr.Report != nil {
		p.counts = countsOf(pr.Report)
	}
	due := now.Sub(p.lastWanted) >= PushInterval
	p.mu.Unlock()
	if due {
		p.want()
	}
}

// Finish reports how the run ended: r is what Job.Run returned (nil if it
// failed before scanning) and err its error. It returns once the outcome
// is pushed, or its push failed: within two PushTimeouts.
func (p *Pushgateway) Finish(r *Report, err error) {
	p.mu.Lock()
	switch {
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		p.state = StateInterrupted
	case err != nil:
		p.state = StateFailed
	case r.Remaining() > 0, r.PrimaryInDoubt():
		p.state = StateRemaining
	default:
		p.state = StateComplete
	}
	if r != nil {
		p.counts = countsOf(r)
	}
	p.finished = p.now()
	p.mu.Unlock()
	p.start.Do(func() { go p.run() })
	close(p.final)
	<-p.done
}

// want asks the pushing goroutine, started on first use, for a push.
func (p *Pushgateway) want() {
	p.mu.Lock()
	p.lastWanted = p.now()
	p.mu.Unlock()
	p.start.Do(func() { go p.run() })
	select {
	case p.wake <- struct{}{}:
	default: // a push is already wanted; it will send this state too
	}
}

// run pushes when asked, and the outcome last.
func (p *Pushgateway) run() {
	defer close(p.done)
	for {
		select {
		case <-p.wake:
			p.push()
		case <-p.final:
			p.push()
			return
		}
	}
}

func (p *Pushgateway) push() {
	err := p.pusher.AddContext(context.Background())
	if p.pushed != nil {
		p.pushed(err)
	}
}

// runCounts are the figures of a Report that are pushed.
type runCounts struct {
	scanned, reencrypted, current, undecryptable, plaintextEncrypted, conflicts int64
}

func countsOf(r *Report) runCounts {
	return runCounts{
		scanned: r.Scanned, reencrypted: r.Rewritten, current: r.Current,
		undecryptable: r.Undecryptable.Count, plaintextEncrypted: r.PlaintextEncrypted, conflicts: r.Conflicts,
	}
}

var (
	descToScan = prometheus.NewDesc("fernet_rotation_rows_to_scan",
		"Rows this run had to scan when it started (after its checkpoint, if it resumed).", nil, nil)
	descScanned = prometheus.NewDesc("fernet_rotation_rows_scanned_total",
		"Rows this run scanned.", nil, nil)
	descReencrypted = prometheus.NewDesc("fernet_rotation_rows_reencrypted_total",
		"Rows this run re-encrypted under the primary key.", nil, nil)
	descCurrent = prometheus.NewDesc("fernet_rotation_rows_current_total",
		"Rows this run found already under the primary key.", nil, nil)
	descUndecryptable = prometheus.NewDesc("fernet_rotation_rows_undecryptable_total",
		"Rows this run could not decrypt with any loaded key, left as they are.", nil, nil)
	descPlaintextEncrypted = prometheus.NewDesc("fernet_rotation_rows_plaintext_encrypted_total",
		"Rows holding a legacy plaintext secret that this run encrypted.", nil, nil)
	descConflicts = prometheus.NewDesc("fernet_rotation_conflicts_total",
		"Writes of this run that found the row changed by the app, and re-read it.", nil, nil)
	descState = prometheus.NewDesc("fernet_rotation_state",
		"1 for the state of the last run (running, complete, remaining, failed, interrupted), 0 for the others.", []string{"state"}, nil)
	descProgressed = prometheus.NewDesc("fernet_rotation_last_progress_timestamp_seconds",
		"When the run started or last committed a batch, in Unix seconds.", nil, nil)
	descCompleted = prometheus.NewDesc("fernet_rotation_last_completion_timestamp_seconds",
		"When the last run ended, however it ended, in Unix seconds.", nil, nil)
	descSucceeded = prometheus.NewDesc("fernet_rotation_last_success_timestamp_seconds",
		"When a run last ended with every row under the primary key, in Unix seconds.", nil, nil)
)

// pushCollector is what each push sends: the Pushgateway's state now.
type pushCollector struct{ p *Pushgateway }

func (c pushCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descToScan, descScanned, descReencrypted, descCurrent, descUndecryptable,
		descPlaintextEncrypted, descConflicts, descState, descProgressed, descCompleted, descSucceeded} {
		ch <- d
	}
}

func (c pushCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descToScan, float64(p.toScan))
	counter(descScanned, p.counts.scanned)
	counter(descReencrypted, p.counts.reencrypted)
	counter(descCurrent, p.counts.current)
	counter(descUndecryptable, p.counts.undecryptable)
	counter(descPlaintextEncrypted, p.counts.plaintextEncrypted)
	counter(descConflicts, p.counts.conflicts)
	for _, s := range runStates {
		v := 0.0
		if s == p.state {
			v = 1
		}
		gauge(descState, v, s)
	}
	gauge(descProgressed, unixSeconds(p.progressed))
	if !p.finished.IsZero() {
		gauge(descCompleted, unixSeconds(p.finished))
		if p.state == StateComplete {
			gauge(descSucceeded, unixSeconds(p.finished))
		}
	}
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
