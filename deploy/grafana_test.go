package deploy

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // "sqlite", for the table fernetctl rotates

	"github.com/fernet-sidecar/fernet-sidecar/internal/promtest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// TestGrafanaDashboardModule runs the tests of the nested module grafana,
// which generates the dashboard with the Grafana Foundation SDK: they fail
// when grafana/fernet-sidecar.json differs from its source or does not
// decode strictly.
func TestGrafanaDashboardModule(t *testing.T) {
	testNestedModule(t, filepath.Join(testenv.RepoRoot(t), "deploy", "grafana"))
}

// TestDashboardQueries runs every query of the dashboard, and of its
// variables, against a real Prometheus that scrapes a real sidecar, which
// has served traffic, refused tokens and reloaded its keys, and a real
// Pushgateway, to which fernetctl pushed the runs of two shards that
// completed and a run that failed. Each must parse and return at least one series. The rotation
// alert rules are loaded too: they must evaluate without error, and the
// failed run must fire FernetRotationFailed.
func TestDashboardQueries(t *testing.T) {
	testenv.LookPath(t, "prometheus")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	primary, old := newKey(t), newKey(t)
	primaryFile, oldFile := filepath.Join(dir, "primary.key"), filepath.Join(dir, "old.key")
	for file, key := range map[string]string{primaryFile: primary, oldFile: old} {
		if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := sidecartest.Start(t, imageBinary(t),
		[]string{"DJANGO_ENCRYPTION_KEY_FILE=" + primaryFile, "OLD_DJANGO_ENCRYPTION_KEY_FILE=" + oldFile},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	gateway := promtest.StartPushgateway(t)
	rules := filepath.Join(root, "deploy", "prometheus", "rotation-alerts.yaml")
	p := startPrometheus(t, fmt.Sprintf(scrapeSidecarEverySecond, rules, s.MetricsAddr)+fmt.Sprintf(`  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(gateway.URL, "http://")))

	driveTraffic(t, s.Addr, old)
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.Metrics(t), `fernet_key_reloads_total{outcome="success"} 2`); {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the keys:\n%s", s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A table under the old key, re-encrypted by two shards, each pushing
	// to its own group; and a run that fails (the table does not exist).
	const rows = 45
	dsn := "sqlite:" + oldKeyTable(t, dir, old, rows)
	fernetctl := buildFernetctl(t, root)
	started := time.Now()
	for _, run := range []struct {
		table string
		extra []string
		code  int
	}{
		{"secrets", []string{"--shard", "0/2"}, 0},
		{"secrets", []string{"--shard", "1/2"}, 0},
		{"missing", nil, 1},
	} {
		args := append([]string{"reencrypt", "--dsn", dsn, "--table", run.table, "--column", "token",
			"--batch-size", "10", "--sidecar", s.Addr, "--pushgateway", gateway.URL}, run.extra...)
		cmd := exec.Command(fernetctl, args...)
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != run.code {
			t.Fatalf("fernetctl %q: exit %d, want %d\n%s", args, code, run.code, out)
		}
		if strings.Contains(string(out), "fernetctl: pushgateway") {
			t.Errorf("fernetctl %q could not push:\n%s", args, out)
		}
	}

	// What fernetctl pushed, as Prometheus scraped it from the Pushgateway:
	// the two shards' groups add up to the table.
	secrets := `job="fernetctl",table="secrets",column="token"`
	p.waitForValues(t, map[string]float64{
		`sum(fernet_rotation_rows_scanned_total{` + secrets + `})`:                                                    rows,
		`sum(fernet_rotation_rows_reencrypted_total{` + secrets + `})`:                                                rows,
		`sum(fernet_rotation_rows_current_total{` + secrets + `})`:                                                    0,
		`sum(fernet_rotation_rows_undecryptable_total{` + secrets + `})`:                                              0,
		`sum(fernet_rotation_rows_to_scan{` + secrets + `})`:                                                          rows,
		`count(fernet_rotation_rows_scanned_total{` + secrets + `,shard=~"0/2|1/2"} > 0)`:                             2,
		`count(fernet_rotation_state{` + secrets + `,state="complete"} == 1)`:                                         2,
		`sum(fernet_rotation_state{` + secrets + `,state="running"})`:                                                 0,
		`fernet_rotation_state{job="fernetctl",table="missing",column="token",state="failed"}`:                        1,
		`count(fernet_rotation_last_success_timestamp_seconds{` + secrets + `} > ` + fmt.Sprint(started.Unix()) + `)`: 2,
		`count(fernet_rotation_last_success_timestamp_seconds{table="missing"}) or vector(0)`:                         0,
		`ALERTS{alertname="FernetRotationFailed",alertstate="firing",table="missing"}`:                                1,
		`count(ALERTS{alertname="FernetRotationFailed",table="secrets"}) or vector(0)`:                                0,
	})

	instance := strings.ReplaceAll(regexp.QuoteMeta(s.MetricsAddr), `\`, `\\`)
	// As Grafana fills the variables in: a regex of the chosen values,
	// escaped for a PromQL string.
	fill := strings.NewReplacer("$__rate_interval", "30s", "$job", "fernet-sidecar", "$instance", instance).Replace
	dash := readDashboard(t, filepath.Join(root, "deploy", "grafana", "fernet-sidecar.json"))
	queries := 0
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			queries++
			waitForSeries(t, p, fill(target.Expr))
		}
	}
	if queries < 25 {
		t.Errorf("only %d queries in the dashboard", queries)
	}

	// The variables' label_values(selector, label), as Grafana asks
	// Prometheus for them.
	want := map[string]string{"job": "fernet-sidecar", "instance": s.MetricsAddr}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := regexp.MustCompile(`^label_values\((.+), (\w+)\)$`).FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.Query)
			continue
		}
		values := p.labelValues(t, m[2], fill(m[1]))
		if !slices.Contains(values, want[v.Name]) {
			t.Errorf("variable %s: %s gives %q, want %q among them", v.Name, v.Query, values, want[v.Name])
		}
	}

	p.waitForHealthyRules(t, time.Now(), rules)
	p.Stop()
	gateway.Stop()
	s.Stop(t)
}

// driveTraffic makes the sidecar encrypt, decrypt with either key, in
// single and batch calls, and refuse tokens for each reason.
func driveTraffic(t *testing.T, addr, old string) {
	t.Helper()
	client := fernetv1.NewFernetServiceClient(servetest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	enc, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte("JBSWY3DPEHPK3PXP")})
	if err != nil {
		t.Fatal(err)
	}
	underOld := fernetEncrypt(t, old, []byte("JBSWY3DPEHPK3PXP"), uint64(time.Now().Unix()))
	expired := fernetEncrypt(t, old, []byte("x"), uint64(time.Now().Add(-time.Hour).Unix()))
	if _, err := client.EncryptBatch(ctx, &fernetv1.EncryptBatchRequest{Plaintexts: [][]byte{[]byte("a"), []byte("b"), []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{enc.Token, underOld} {
		if _, err := client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: token}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ReEncrypt(ctx, &fernetv1.ReEncryptRequest{Token: underOld}); err != nil {
		t.Fatal(err)
	}
	ttl := int64(60)
	batch, err := client.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{
		Tokens:     []string{enc.Token, underOld, "gAAAAA-not-a-token", fernetEncrypt(t, newKey(t), []byte("x"), uint64(time.Now().Unix())), expired},
		TtlSeconds: &ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Results) != 5 {
		t.Fatalf("DecryptBatch: %d results for 5 tokens", len(batch.Results))
	}
	if _, err := client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: "gAAAAA-not-a-token"}); err == nil {
		t.Fatal("Decrypt of a malformed token succeeded")
	}
}

// oldKeyTable makes a SQLite database with a table of rows tokens under
// the old key, and returns its path.
func oldKeyTable(t *testing.T, dir, old string, rows int) string {
	t.Helper()
	path := filepath.Join(dir, "app.sqlite3")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE secrets (id INTEGER PRIMARY KEY, token TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		token := fernetEncrypt(t, old, []byte(fmt.Sprintf("secret %d", i)), uint64(time.Now().Unix()))
		if _, err := db.Exec(`INSERT INTO secrets (token) VALUES (?)`, token); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func buildFernetctl(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fernetctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/fernetctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fernetctl: %v\n%s", err, out)
	}
	return bin
}

// grafanaDashboard is the part of the dashboard's JSON that holds queries.
type grafanaDashboard struct {
	Panels []struct {
		Title   string
		Targets []struct {
			Expr  string
			RefID string `json:"refId"`
		}
	}
	Templating struct {
		List []struct {
			Name, Type string
			Query      string
		}
	}
}

func readDashboard(t *testing.T, path string) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// waitForSeries runs expr until it returns a series, and fails the test if
// Prometheus refuses it or it returns none in time.
func waitForSeries(t *testing.T, p *prometheusServer, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		samples, err := p.query(t, expr)
		if err != nil {
			t.Errorf("%v", err) // Prometheus refused the query: it does not parse
			return
		}
		if len(samples) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no series", expr)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// labelValues is what Grafana's label_values(selector, label) asks for.
func (p *prometheusServer) labelValues(t *testing.T, label, selector string) []string {
	t.Helper()
	code, body := promtest.Get(p.URL + "/api/v1/label/" + label + "/values?match[]=" + url.QueryEscape(selector))
	if code != http.StatusOK {
		t.Errorf("label values of %s for %s: HTTP %d: %s", label, selector, code, body)
		return nil
	}
	var resp struct{ Data []string }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Errorf("label values of %s for %s: %v", label, selector, err)
	}
	return resp.Data
}
