package rotation

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pushRecorder stands in for the Pushgateway's HTTP API and records the
// requests; deploy/grafana_test.go runs fernetctl against the real one.
type pushRecorder struct {
	mu       sync.Mutex
	requests []string // "METHOD path"
	status   int
}

func (r *pushRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req.Method+" "+req.URL.Path)
	w.WriteHeader(r.status)
}

func (r *pushRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

func newTestPushgateway(t *testing.T, status int) (*Pushgateway, *pushRecorder, *time.Time) {
	t.Helper()
	p, rec, clock, _ := newShardPushgateway(t, status, Shard{})
	return p, rec, clock
}

// newShardPushgateway also returns the outcome of each push, in order.
func newShardPushgateway(t *testing.T, status int, shard Shard) (*Pushgateway, *pushRecorder, *time.Time, <-chan error) {
	t.Helper()
	rec := &pushRecorder{status: status}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	clock := time.Unix(1_800_000_000, 0)
	pushes := make(chan error, 100)
	p := NewPushgateway(srv.URL, "fernetctl", "otp_device", "key", shard, func(err error) { pushes <- err })
	p.now = func() time.Time { return clock }
	return p, rec, &clock, pushes
}

func TestPushgatewayPushesAtStartEachBatchAndEnd(t *testing.T) {
	p, rec, clock, pushes := newShardPushgateway(t, http.StatusOK, Shard{})
	r := &Report{Scanned: 10, Rewritten: 7, Current: 3}
	steps := []struct {
		name  string
		after time.Duration
		do    func()
		push  bool
	}{
		{"start", 0, p.Start, true},
		{"a batch at once", 400 * time.Millisecond, func() { p.Progress(Progress{Total: 30, Report: r}) }, false},
		{"a batch a second after the start", 600 * time.Millisecond, func() { p.Progress(Progress{Total: 30, Report: r}) }, true},
		{"a batch right after", 10 * time.Millisecond, func() { p.Progress(Progress{Total: 30, Report: r}) }, false},
		{"the end, right after", 10 * time.Millisecond, func() { p.Finish(r, nil) }, true},
	}
	want := 0
	for _, step := range steps {
		*clock = clock.Add(step.after)
		step.do()
		if step.push {
			want++
			if err := <-pushes; err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
	}
	// Finish has waited for the last push: any push not wanted shows.
	if got := rec.count(); got != want {
		t.Fatalf("%d pushes, want %d", got, want)
	}
	for _, req := range rec.requests {
		if labels := pushGroup(t, req); len(labels) != 2 || labels["table"] != "otp_device" || labels["column"] != "key" {
			t.Errorf("request %q; want a POST to the group of job, table and column", req)
		}
	}
}

// TestPushgatewayNeverHoldsUpTheRun: while the Pushgateway sits on a
// push, batch after batch is reported without waiting for it; they
// coalesce into one push, and the outcome is pushed once it answers.
func TestPushgatewayNeverHoldsUpTheRun(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		<-release
	}))
	t.Cleanup(srv.Close)
	clock := time.Unix(1_800_000_000, 0)
	var failed []error
	p := NewPushgateway(srv.URL, "fernetctl", "otp_device", "key", Shard{}, func(err error) {
		if err != nil {
			failed = append(failed, err)
		}
	})
	p.now = func() time.Time { return clock }
	p.Start()
	for i := range 5 {
		clock = clock.Add(PushInterval) // every batch due for a push
		p.Progress(Progress{Total: 50, Report: &Report{Scanned: int64(10 * (i + 1))}})
	}
	// Had a batch waited for its push, the Pushgateway would not have
	// been released yet: every push would have timed out.
	close(release)
	p.Finish(&Report{Mode: Rotate, Scanned: 50, Rewritten: 50}, nil)
	mu.Lock()
	defer mu.Unlock()
	// Three at most: the start's, one for the 5 batches, the outcome's;
	// fewer if the pushing goroutine found them all wanted at once.
	if requests < 1 || requests > 3 || len(failed) > 0 {
		t.Errorf("%d pushes, failed %v; want 1 to 3 (the batches coalesced), none failed", requests, failed)
	}
}

func TestPushgatewayGroupsByShard(t *testing.T) {
	for _, tc := range []struct {
		shard Shard
		want  string // the shard label, "" for none
	}{
		{Shard{}, ""},
		{Shard{Index: 0, Count: 1}, ""},
		{Shard{Index: 2, Count: 8}, "2/8"},
	} {
		p, rec, _, _ := newShardPushgateway(t, http.StatusOK, tc.shard)
		p.Start()
		p.Finish(nil, errors.New("stopped"))
		labels := pushGroup(t, rec.requests[0])
		if labels["shard"] != tc.want || labels["table"] != "otp_device" {
			t.Errorf("shard %v: pushed to %q, want shard label %q", tc.shard, rec.requests[0], tc.want)
		}
	}
}

// pushGroup reads the grouping labels after the job from a recorded push,
// as the Pushgateway does: they come in any order, and a value with a
// slash in it is base64url-encoded, its label name suffixed "@base64".
func pushGroup(t *testing.T, req string) map[string]string {
	t.Helper()
	group, ok := strings.CutPrefix(req, "POST /metrics/job/fernetctl/")
	pairs := strings.Split(group, "/")
	if !ok || len(pairs)%2 != 0 {
		t.Fatalf("request %q: not a POST to a group of job fernetctl", req)
	}
	labels := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		name, value := pairs[i], pairs[i+1]
		if n, encoded := strings.CutSuffix(name, "@base64"); encoded {
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
			if err != nil {
				t.Fatalf("request %q: %v", req, err)
			}
			name, value = n, string(raw)
		}
		labels[name] = value
	}
	return labels
}

func TestPushgatewayReportsTheOutcome(t *testing.T) {
	const end = 1_800_000_060
	for _, tc := range []struct {
		name    string
		report  *Report
		err     error
		state   string
		success bool
	}{
		{"every row under the primary key", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, nil, StateComplete, true},
		{"rows left undecryptable", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Undecryptable: Issues{Count: 1}}, nil, StateRemaining, false},
		{"the primary key changed during the run", &Report{Mode: Rotate, Scanned: 5, Rewritten: 5, NewPrimary: "0123456789abcdef"}, nil, StateRemaining, false},
		{"the primary key unconfirmed after the run", &Report{Mode: Rotate, Scanned: 5, Rewritten: 5, PrimaryUnconfirmed: errors.New("unreachable")}, nil, StateRemaining, false},
		{"an error mid-run", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, errors.New("database gone"), StateFailed, false},
		{"an error before any row", nil, errors.New("no such table"), StateFailed, false},
		{"interrupted", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, ErrInterrupted, StateInterrupted, false},
		{"aborted", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, fmt.Errorf("reading: %w", context.Canceled), StateInterrupted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, clock, pushes := newShardPushgateway(t, http.StatusOK, Shard{})
			p.Start()
			*clock = time.Unix(end, 0)
			p.Finish(tc.report, tc.err)
			for range len(pushes) {
				if err := <-pushes; err != nil {
					t.Fatal(err)
				}
			}
			var want strings.Builder
			want.WriteString("# HELP fernet_rotation_state 1 for the state of the last run (running, complete, remaining, failed, interrupted), 0 for the others.\n# TYPE fernet_rotation_state gauge\n")
			for _, s := range runStates {
				v := 0
				if s == tc.state {
					v = 1
				}
				fmt.Fprintf(&want, "fernet_rotation_state{state=%q} %d\n", s, v)
			}
			want.WriteString("# HELP fernet_rotation_last_completion_timestamp_seconds When the last run ended, however it ended, in Unix seconds.\n# TYPE fernet_rotation_last_completion_timestamp_seconds gauge\n")
			fmt.Fprintf(&want, "fernet_rotation_last_completion_timestamp_seconds %d\n", end)
			if tc.success {
				want.WriteString("# HELP fernet_rotation_last_success_timestamp_seconds When a run last ended with every row under the primary key, in Unix seconds.\n# TYPE fernet_rotation_last_success_timestamp_seconds gauge\n")
				fmt.Fprintf(&want, "fernet_rotation_last_success_timestamp_seconds %d\n", end)
			}
			if tc.report != nil {
				want.WriteString("# HELP fernet_rotation_rows_reencrypted_total Rows this run re-encrypted under the primary key.\n# TYPE fernet_rotation_rows_reencrypted_total counter\n")
				fmt.Fprintf(&want, "fernet_rotation_rows_reencrypted_total %d\n", tc.report.Rewritten)
			}
			names := []string{"fernet_rotation_state", "fernet_rotation_last_completion_timestamp_seconds", "fernet_rotation_last_success_timestamp_seconds"}
			if tc.report != nil {
				names = append(names, "fernet_rotation_rows_reencrypted_total")
			}
			if err := testutil.CollectAndCompare(pushCollector{p}, strings.NewReader(want.String()), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestPushgatewayRunningHasNoCompletion(t *testing.T) {
	p, _, _ := newTestPushgateway(t, http.StatusOK)
	p.Start()
	t.Cleanup(func() { p.Finish(nil, errors.New("stopped")) })
	// A run in progress must not look finished: it sends no completion
	// time, and the success time stays the Pushgateway's, from an earlier
	// run.
	if n := testutil.CollectAndCount(pushCollector{p}, "fernet_rotation_last_completion_timestamp_seconds", "fernet_rotation_last_success_timestamp_seconds"); n != 0 {
		t.Errorf("%d completion or success series while running", n)
	}
	want := `# HELP fernet_rotation_state 1 for the state of the last run (running, complete, remaining, failed, interrupted), 0 for the others.
# TYPE fernet_rotation_state gauge
fernet_rotation_state{state="complete"} 0
fernet_rotation_state{state="failed"} 0
fernet_rotation_state{state="interrupted"} 0
fernet_rotation_state{state="remaining"} 0
fernet_rotation_state{state="running"} 1
`
	if err := testutil.CollectAndCompare(pushCollector{p}, strings.NewReader(want), "fernet_rotation_state"); err != nil {
		t.Error(err)
	}
}

func TestPushgatewayReportsAFailedPush(t *testing.T) {
	p, _, _, pushes := newShardPushgateway(t, http.StatusInternalServerError, Shard{})
	p.Start()
	if err := <-pushes; err == nil {
		t.Error("a push the Pushgateway refused reported no error")
	}
	p.Finish(nil, errors.New("stopped"))
}
