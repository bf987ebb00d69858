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
	return newShardPushgateway(t, status, Shard{})
}

func newShardPushgateway(t *testing.T, status int, shard Shard) (*Pushgateway, *pushRecorder, *time.Time) {
	t.Helper()
	rec := &pushRecorder{status: status}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	clock := time.Unix(1_800_000_000, 0)
	p := NewPushgateway(srv.URL, "fernetctl", "otp_device", "key", shard)
	p.now = func() time.Time { return clock }
	return p, rec, &clock
}

func TestPushgatewayPushesAtStartEachBatchAndEnd(t *testing.T) {
	p, rec, clock := newTestPushgateway(t, http.StatusOK)
	ctx := context.Background()
	r := &Report{Scanned: 10, Rewritten: 7, Current: 3}
	steps := []struct {
		name  string
		after time.Duration
		do    func() error
		push  bool
	}{
		{"start", 0, func() error { return p.Start(ctx) }, true},
		{"a batch at once", 400 * time.Millisecond, func() error { _, err := p.Progress(ctx, Progress{Total: 30, Report: r}); return err }, false},
		{"a batch a second after the start", 600 * time.Millisecond, func() error { _, err := p.Progress(ctx, Progress{Total: 30, Report: r}); return err }, true},
		{"a batch right after", 10 * time.Millisecond, func() error { _, err := p.Progress(ctx, Progress{Total: 30, Report: r}); return err }, false},
		{"the end, right after", 10 * time.Millisecond, func() error { return p.Finish(ctx, r, nil) }, true},
	}
	pushes := 0
	for _, step := range steps {
		*clock = clock.Add(step.after)
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if step.push {
			pushes++
		}
		if got := rec.count(); got != pushes {
			t.Fatalf("after %s: %d pushes, want %d", step.name, got, pushes)
		}
	}
	for _, req := range rec.requests {
		if labels := pushGroup(t, req); len(labels) != 2 || labels["table"] != "otp_device" || labels["column"] != "key" {
			t.Errorf("request %q; want a POST to the group of job, table and column", req)
		}
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
		p, rec, _ := newShardPushgateway(t, http.StatusOK, tc.shard)
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
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
		{"an error mid-run", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, errors.New("database gone"), StateFailed, false},
		{"an error before any row", nil, errors.New("no such table"), StateFailed, false},
		{"interrupted", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, ErrInterrupted, StateInterrupted, false},
		{"aborted", &Report{Mode: Rotate, Scanned: 5, Rewritten: 4, Current: 1}, fmt.Errorf("reading: %w", context.Canceled), StateInterrupted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, clock := newTestPushgateway(t, http.StatusOK)
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			*clock = time.Unix(end, 0)
			if err := p.Finish(context.Background(), tc.report, tc.err); err != nil {
				t.Fatal(err)
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
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
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
	p, _, _ := newTestPushgateway(t, http.StatusInternalServerError)
	if err := p.Start(context.Background()); err == nil {
		t.Error("a push the Pushgateway refused returned no error")
	}
}
