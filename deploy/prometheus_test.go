package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/internal/promtest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// TestAlertRules runs promtool on the alert rules and their unit tests
// (rotation-alerts.yaml's too, whose series come from fernetctl through a
// Pushgateway: grafana_test.go evaluates those rules), and checks that
// every fernet_* metric and label value alerts.yaml names is one the
// sidecar exports.
func TestAlertRules(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool")
	dir := filepath.Join(testenv.RepoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
		{"check", "rules", "rotation-alerts.yaml"},
		{"test", "rules", "rotation-alerts_test.yaml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}

	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := sidecartest.Start(t, imageBinary(t), []string{"DJANGO_ENCRYPTION_KEY=" + newKey(t)},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	code, exported := promtest.Get("http://" + s.MetricsAddr + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, exported)
	}
	// Comments name metrics too (the annotations quote them), so all of
	// the file is checked.
	names := regexp.MustCompile(`\bfernet_[a-z_]+`).FindAllString(string(rules), -1)
	if len(names) == 0 {
		t.Fatal("alerts.yaml names no fernet_* metric")
	}
	for _, name := range names {
		if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).MatchString(exported) {
			t.Errorf("alerts.yaml names %s, which the sidecar does not export", name)
		}
	}
	for _, m := range regexp.MustCompile(`\b(reason|key_role|outcome)(!?=)"([a-z_]+)"`).FindAllStringSubmatch(string(rules), -1) {
		if !strings.Contains(exported, fmt.Sprintf(`%s="%s"`, m[1], m[3])) {
			t.Errorf("alerts.yaml matches %s%s%q, a label value the sidecar never exports", m[1], m[2], m[3])
		}
	}
	s.Stop(t)
}

// prometheusServer is Debian's prometheus, running on a loopback port with
// its own config and storage: it neither uses nor disturbs a system
// Prometheus on :9090.
type prometheusServer struct{ *promtest.Daemon }

func startPrometheus(t *testing.T, config string) *prometheusServer {
	t.Helper()
	bin := testenv.LookPath(t, "prometheus")
	dir := t.TempDir()
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return &prometheusServer{promtest.StartDaemon(t, "prometheus", dir, func(addr string, attempt int) []string {
		return []string{bin,
			"--config.file=" + configFile,
			"--storage.tsdb.path=" + filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--web.listen-address=" + addr,
			"--log.level=info"}
	})}
}

// query runs an instant query and returns the result's samples.
func (p *prometheusServer) query(t *testing.T, expr string) ([]promSample, error) {
	t.Helper()
	code, body := promtest.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if code != http.StatusOK {
		return nil, fmt.Errorf("query %s: HTTP %d: %s", expr, code, body)
	}
	var resp struct {
		Status string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, fmt.Errorf("query %s: %v: %s", expr, err, body)
	}
	if resp.Status != "success" || resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %s", expr, body)
	}
	var samples []promSample
	for _, r := range resp.Data.Result {
		text, _ := r.Value[1].(string)
		value, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %v", expr, r.Value, err)
		}
		samples = append(samples, promSample{labels: r.Metric, value: value})
	}
	return samples, nil
}

type promSample struct {
	labels map[string]string
	value  float64
}

// scrapeSidecarEverySecond is a Prometheus config, to fill in with the
// path of a rules file and the sidecar's metrics address, that scrapes the
// sidecar as job fernet-sidecar and evaluates the rules every second.
const scrapeSidecarEverySecond = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: fernet-sidecar
    static_configs:
      - targets: [%q]
`

// waitForValues waits until each query returns one sample, of its value.
func (p *prometheusServer) waitForValues(t *testing.T, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for expr, value := range want {
		for {
			samples, err := p.query(t, expr)
			if err == nil && len(samples) == 1 && samples[0].value == value {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %v; Prometheus answers %v, %v\nprometheus log:\n%s", expr, value, samples, err, p.Log)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// waitForHealthyRules waits until Prometheus has evaluated its rules, all
// of them, after since, without error.
func (p *prometheusServer) waitForHealthyRules(t *testing.T, since time.Time, ruleFiles ...string) {
	t.Helper()
	rules := 0
	for _, file := range ruleFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rules += strings.Count(string(data), "- alert: ")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		health, err := p.ruleHealth(t, since)
		ok := err == nil && len(health) == rules
		for _, h := range health {
			ok = ok && h == "ok"
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert rules in Prometheus: %v, %v; want %d evaluated without error\nprometheus log:\n%s", health, err, rules, p.Log)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestPrometheusScrapesSidecar has a real Prometheus scrape a real sidecar
// every second, with the alert rules loaded, drives refused Decrypts, and
// reads the failure counters back through Prometheus' HTTP API.
func TestPrometheusScrapesSidecar(t *testing.T) {
	testenv.LookPath(t, "prometheus")
	rules := filepath.Join(testenv.RepoRoot(t), "deploy", "prometheus", "alerts.yaml")
	s := sidecartest.Start(t, imageBinary(t), []string{"DJANGO_ENCRYPTION_KEY=" + newKey(t)},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	p := startPrometheus(t, fmt.Sprintf(scrapeSidecarEverySecond, rules, s.MetricsAddr))

	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := fernetv1.NewFernetServiceClient(conn)
	const malformed, unknownKey = 7, 2
	bad := map[string]int{"gAAAAA-not-a-token": malformed}
	for range unknownKey {
		bad[fernetEncrypt(t, newKey(t), []byte("x"), uint64(time.Now().Unix()))] = 1
	}
	for token, times := range bad {
		for range times {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: token})
			cancel()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Decrypt of a bad token: %v, want InvalidArgument", err)
			}
		}
	}

	sidecar := fmt.Sprintf(`job="fernet-sidecar",instance=%q`, s.MetricsAddr)
	p.waitForValues(t, map[string]float64{
		`fernet_decrypt_failures_total{` + sidecar + `,reason="malformed"}`:         malformed,
		`fernet_decrypt_failures_total{` + sidecar + `,reason="invalid_signature"}`: unknownKey,
		`fernet_decrypt_failures_total{` + sidecar + `,reason="expired"}`:           0,
		`up{` + sidecar + `}`: 1,
	})

	// The rules evaluate against the real series without errors (a label
	// mismatch in a division, say, would show here and nowhere else), in
	// an evaluation after the series above were there.
	p.waitForHealthyRules(t, time.Now(), rules)
	p.Stop()
	s.Stop(t)
}

// ruleHealth returns the health of each alerting rule evaluated after
// since.
func (p *prometheusServer) ruleHealth(t *testing.T, since time.Time) (map[string]string, error) {
	t.Helper()
	code, body := promtest.Get(p.URL + "/api/v1/rules?type=alert")
	if code != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", code, body)
	}
	var resp struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
					LastEvaluation          time.Time
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, err
	}
	health := map[string]string{}
	for _, g := range resp.Data.Groups {
		for _, r := range g.Rules {
			if !r.LastEvaluation.After(since) {
				continue
			}
			health[r.Name] = r.Health + r.LastError
		}
	}
	return health, nil
}
