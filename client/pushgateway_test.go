package client_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	_ "modernc.org/sqlite" // "sqlite", for the tables the commands rotate

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/promtest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// TestRotationPushgateway runs Django's `manage.py fernet_reencrypt
// --pushgateway` and Flask's `flask fernet reencrypt --pushgateway` against
// the real sidecar and a real Pushgateway, and reads back what they pushed:
// the metrics the real fernetctl pushes (same names, types and labels),
// grouped by job, table and column, for a run that leaves a row behind,
// one that completes and one that fails (which keeps the last success
// time). A Pushgateway that cannot be reached is one warning, and the run
// goes on; --check refuses the option.
func TestRotationPushgateway(t *testing.T) {
	py := requirePython(t)
	primary, old := newKey(t), newKey(t)
	addr := startUnixSidecar(t, primary, old)
	gateway := promtest.StartPushgateway(t)

	const rows = 25 // under the old key, and one more that is no token
	// fernetctl's complete run is the reference.
	dir := t.TempDir()
	reference := filepath.Join(dir, "fernetctl.sqlite3")
	if _, err := tokensTable(t, reference, old, rows).Exec(`DELETE FROM secrets WHERE token = 'not a token'`); err != nil {
		t.Fatal(err)
	}
	fernetctl := exec.Command(sidecartest.Build(t, "cmd/fernetctl"), "reencrypt", "--dsn", "sqlite:"+reference,
		"--table", "secrets", "--column", "token", "--sidecar", addr, "--pushgateway", gateway.URL)
	fernetctl.Dir = dir
	if out, err := fernetctl.CombinedOutput(); err != nil || strings.Contains(string(out), "pushgateway") {
		t.Fatalf("fernetctl: %v\n%s", err, out)
	}
	_, fernetctlSchema := pushedGroup(t, gateway.URL, map[string]string{"job": "fernetctl", "table": "secrets", "column": "token"})
	if len(fernetctlSchema) != 11 {
		t.Fatalf("fernetctl pushed %d metrics, want 11: %v", len(fernetctlSchema), fernetctlSchema)
	}
	commands := []struct {
		job string
		// args runs the command on the SQLite file db.
		args func(db string) []string
		// refusedExit is its exit status when its options are refused.
		refusedExit int
	}{
		{"django", func(db string) []string {
			return []string{"-m", "django", "fernet_reencrypt", "--settings", "examples.django_async.settings", "--batch-size", "10"}
		}, 1},
		{"flask", func(db string) []string {
			return []string{"-m", "flask", "--app", "examples.flask_app", "fernet", "reencrypt", "--table", "secrets", "--column", "token",
				"--batch-size", "10", "--database-uri", "sqlite:///" + db}
		}, 2},
	}
	for _, c := range commands {
		t.Run(c.job, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "app.sqlite3")
			conn := tokensTable(t, db, old, rows)
			env := []string{"FERNET_SIDECAR_TARGET=" + addr, "DATABASE_PATH=" + db, "DATABASE_URL=sqlite:///" + db}
			run := func(wantExit int, extra ...string) (stdout, stderr string) {
				t.Helper()
				args := append(c.args(db), extra...)
				cmd := pythonCommand(t, py, env, args...)
				var out, errOut bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errOut
				cmd.Run()
				if code := cmd.ProcessState.ExitCode(); code != wantExit {
					t.Fatalf("%s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantExit, &out, &errOut)
				}
				return out.String(), errOut.String()
			}
			group := map[string]string{"job": c.job, "table": "secrets", "column": "token"}
			started := float64(time.Now().Unix())

			// A row no key opens is left behind: "remaining", and exit 3
			// as fernetctl's.
			if _, stderr := run(3, "--pushgateway", gateway.URL); strings.Contains(stderr, "pushgateway") {
				t.Fatalf("could not push:\n%s", stderr)
			}
			got, _ := pushedGroup(t, gateway.URL, group)
			wantState(t, got, "remaining")
			wantValues(t, got, map[string]float64{
				"fernet_rotation_rows_to_scan":                   rows + 1,
				"fernet_rotation_rows_scanned_total":             rows + 1,
				"fernet_rotation_rows_reencrypted_total":         rows,
				"fernet_rotation_rows_current_total":             0,
				"fernet_rotation_rows_undecryptable_total":       1,
				"fernet_rotation_rows_plaintext_encrypted_total": 0,
				"fernet_rotation_conflicts_total":                0,
			})
			if _, ok := got["fernet_rotation_last_success_timestamp_seconds"]; ok {
				t.Errorf("a run that left a row behind pushed a success time")
			}
			for _, name := range []string{"fernet_rotation_last_progress_timestamp_seconds", "fernet_rotation_last_completion_timestamp_seconds"} {
				if v, ok := got[name]; !ok || v < started {
					t.Errorf("%s = %v (pushed: %v), want a time after %v", name, v, ok, started)
				}
			}

			// Without it, the next run completes.
			if _, err := conn.Exec(`DELETE FROM secrets WHERE token = 'not a token'`); err != nil {
				t.Fatal(err)
			}
			run(0, "--pushgateway", gateway.URL)
			got, schema := pushedGroup(t, gateway.URL, group)
			if !maps.Equal(schema, fernetctlSchema) {
				t.Errorf("pushed metrics (type, labels)\n%v\nfernetctl pushes\n%v", schema, fernetctlSchema)
			}
			wantState(t, got, "complete")
			wantValues(t, got, map[string]float64{
				"fernet_rotation_rows_to_scan":           rows,
				"fernet_rotation_rows_scanned_total":     rows,
				"fernet_rotation_rows_reencrypted_total": 0,
				"fernet_rotation_rows_current_total":     rows,
			})
			succeeded, ok := got["fernet_rotation_last_success_timestamp_seconds"]
			if !ok || succeeded < started {
				t.Fatalf("last success time %v (pushed: %v), want a time after %v", succeeded, ok, started)
			}

			// A run that fails (the table is gone) keeps that success time.
			if _, err := conn.Exec(`ALTER TABLE secrets RENAME TO gone`); err != nil {
				t.Fatal(err)
			}
			run(1, "--pushgateway", gateway.URL)
			got, _ = pushedGroup(t, gateway.URL, group)
			wantState(t, got, "failed")
			wantValues(t, got, map[string]float64{"fernet_rotation_last_success_timestamp_seconds": succeeded})
			if _, err := conn.Exec(`ALTER TABLE gone RENAME TO secrets`); err != nil {
				t.Fatal(err)
			}

			// A Pushgateway nobody listens on: one warning, and the run goes on.
			_, stderr := run(0, "--pushgateway", fmt.Sprintf("http://127.0.0.1:%d", promtest.FreePort(t)))
			if n := strings.Count(stderr, "pushgateway"); n != 1 {
				t.Errorf("unreachable Pushgateway: %d warnings, want 1:\n%s", n, stderr)
			}

			stdout, stderr := run(c.refusedExit, "--check", "--pushgateway", gateway.URL)
			if !strings.Contains(stdout+stderr, "--dry-run and --check do not rotate") {
				t.Errorf("--check --pushgateway was not refused:\n%s%s", stdout, stderr)
			}
		})
	}
}

// tokensTable makes the SQLite database path with a table secrets of rows
// tokens under key and one value that is no token, and returns it open.
func tokensTable(t *testing.T, path string, key *fernet.Key, rows int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE secrets (id INTEGER PRIMARY KEY, token TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ring := fernet.NewKeyring(key)
	for i := range rows {
		enc, err := ring.Encrypt([]byte(fmt.Sprintf("secret %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO secrets (token) VALUES (?)`, enc.Token); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO secrets (token) VALUES ('not a token')`); err != nil {
		t.Fatal(err)
	}
	return db
}

// pushedGroup reads the Pushgateway's /metrics and returns the values of
// the group's rotation metrics (state as "fernet_rotation_state/<state>"),
// and the type and label names of each.
func pushedGroup(t *testing.T, url string, group map[string]string) (values map[string]float64, schema map[string]string) {
	t.Helper()
	code, body := promtest.Get(url + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %s", url, code, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the Pushgateway's /metrics: %v", err)
	}
	values, schema = map[string]float64{}, map[string]string{}
	for name, family := range families {
		if !strings.HasPrefix(name, "fernet_rotation_") {
			continue
		}
	metrics:
		for _, m := range family.GetMetric() {
			var labels []string
			for k, v := range group {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue metrics
				}
			}
			key := name
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
				if l.GetName() == "state" {
					key += "/" + l.GetValue()
				}
			}
			slices.Sort(labels)
			schema[name] = fmt.Sprintf("%s %v", family.GetType(), labels)
			switch family.GetType() {
			case dto.MetricType_COUNTER:
				values[key] = m.GetCounter().GetValue()
			default:
				values[key] = m.GetGauge().GetValue()
			}
		}
	}
	return values, schema
}

// wantState checks that fernet_rotation_state is 1 for state and 0 for
// every other state.
func wantState(t *testing.T, got map[string]float64, state string) {
	t.Helper()
	for _, s := range []string{"running", "complete", "remaining", "failed", "interrupted"} {
		want := 0.0
		if s == state {
			want = 1
		}
		if v, ok := got["fernet_rotation_state/"+s]; !ok || v != want {
			t.Errorf("fernet_rotation_state{state=%q} = %v (pushed: %v), want %v", s, v, ok, want)
		}
	}
}

func wantValues(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (pushed: %v), want %v", name, g, ok, v)
		}
	}
}
