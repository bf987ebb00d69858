package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// sidecar is the real binary, running.
type sidecar struct {
	cmd         *exec.Cmd
	addr        string // as given to --addr
	metricsAddr string
	stderr      *lockedBuffer
	exited      chan error
}

type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *lockedBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

func buildSidecar(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fernet-sidecar")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startSidecar runs bin and waits for its "serving" log line, which names
// the address it bound.
func startSidecar(t *testing.T, bin string, env []string, args ...string) *sidecar {
	t.Helper()
	s := &sidecar{cmd: exec.Command(bin, args...), stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	s.cmd.Env = env
	s.cmd.Dir = t.TempDir()
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan map[string]any, 1)
	go func() {
		scanner := bufio.NewScanner(pipe)
		for scanner.Scan() {
			s.stderr.add(scanner.Text())
			var entry map[string]any
			if json.Unmarshal(scanner.Bytes(), &entry) == nil && entry["msg"] == "serving" {
				serving <- entry
			}
		}
		s.exited <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
		}
	})
	select {
	case entry := <-serving:
		s.addr, _ = entry["addr"].(string)
		s.metricsAddr, _ = entry["metrics_addr"].(string)
	case err := <-s.exited:
		t.Fatalf("sidecar exited before serving (%v):\n%s", err, s.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("sidecar not serving after 10s:\n%s", s.stderr)
	}
	return s
}

// stop sends SIGTERM and requires a clean exit within the grace period.
func (s *sidecar) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM:\n%s", s.stderr)
	}
}

func (s *sidecar) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + s.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// grpcurl runs grpcurl against the sidecar with reflection only (no proto
// files), returning its stdout and stderr.
type grpcurl func(t *testing.T, data string, method string) (stdout, stderr string, err error)

func grpcurlFor(t *testing.T, addr string) grpcurl {
	bin := testenv.LookPath(t, "grpcurl")
	target := []string{"-plaintext", addr}
	if path, isUnix := strings.CutPrefix(addr, "unix://"); isUnix {
		target = []string{"-plaintext", "-unix", path}
	}
	return func(t *testing.T, data, method string) (string, string, error) {
		t.Helper()
		args := append([]string{"-max-time", "10"}, target[:len(target)-1]...)
		if data != "" {
			args = append(args, "-d", data)
		}
		args = append(args, target[len(target)-1])
		if method != "" {
			args = append(args, strings.Fields(method)...)
		}
		cmd := exec.Command(bin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
}

func mustGenerate(t *testing.T) *fernet.Key {
	t.Helper()
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestEndToEnd(t *testing.T) {
	testenv.LookPath(t, "grpcurl")
	bin := buildSidecar(t)
	primary, old := mustGenerate(t), mustGenerate(t)
	env := []string{
		"DJANGO_ENCRYPTION_KEY=" + primary.Encode(),
		"OLD_DJANGO_ENCRYPTION_KEY=" + old.Encode(),
	}
	transports := []struct{ name, addr string }{
		{"tcp", "127.0.0.1:0"},
		{"unix socket", "unix://" + filepath.Join(t.TempDir(), "fernet.sock")},
	}
	for _, transport := range transports {
		t.Run(transport.name, func(t *testing.T) {
			s := startSidecar(t, bin, env, "--addr", transport.addr, "--metrics-addr", "127.0.0.1:0")
			call := grpcurlFor(t, s.addr)
			checkSession(t, s, call, primary, old)
			s.stop(t)
			if path, isUnix := strings.CutPrefix(s.addr, "unix://"); isUnix {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Errorf("socket %s left behind after shutdown", path)
				}
			}
		})
	}
}

func checkSession(t *testing.T, s *sidecar, call grpcurl, primary, old *fernet.Key) {
	out, stderr, err := call(t, "", "list")
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, stderr)
	}
	for _, service := range []string{"fernet.v1.FernetService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(out, service) {
			t.Errorf("grpcurl list lacks %s:\n%s", service, out)
		}
	}

	if out, _, err := call(t, "", "grpc.health.v1.Health/Check"); err != nil || !strings.Contains(out, "SERVING") {
		t.Fatalf("health check = %q, %v", out, err)
	}

	plaintext := "JBSWY3DPEHPK3PXP"
	var encrypted struct{ Token, KeyID string }
	callJSON(t, call, `{"plaintext":"`+base64.StdEncoding.EncodeToString([]byte(plaintext))+`"}`, "fernet.v1.FernetService/Encrypt", &encrypted)
	if encrypted.KeyID != primary.ID() {
		t.Fatalf("Encrypt keyId = %s, want %s", encrypted.KeyID, primary.ID())
	}

	var decrypted struct {
		Plaintext      []byte
		KeyID          string
		NeedsReencrypt bool
	}
	callJSON(t, call, `{"token":"`+encrypted.Token+`","ttl_seconds":60}`, "fernet.v1.FernetService/Decrypt", &decrypted)
	if string(decrypted.Plaintext) != plaintext || decrypted.KeyID != primary.ID() || decrypted.NeedsReencrypt {
		t.Fatalf("Decrypt = %+v", decrypted)
	}

	underOld, err := fernet.NewKeyring(old).EncryptAtTime([]byte(plaintext), 1_600_000_000)
	if err != nil {
		t.Fatal(err)
	}
	var rotated struct {
		Token   string
		KeyID   string
		Changed bool
	}
	callJSON(t, call, `{"token":"`+underOld.Token+`"}`, "fernet.v1.FernetService/ReEncrypt", &rotated)
	opened, err := fernet.NewKeyring(primary).Decrypt(rotated.Token)
	if !rotated.Changed || err != nil || string(opened.Plaintext) != plaintext || opened.Timestamp != 1_600_000_000 {
		t.Fatalf("ReEncrypt = %+v, opens to %+v, %v", rotated, opened, err)
	}

	var status struct {
		PrimaryKeyID      string
		DecryptOnlyKeyIDs []string
	}
	callJSON(t, call, "", "fernet.v1.FernetService/GetStatus", &status)
	if status.PrimaryKeyID != primary.ID() || len(status.DecryptOnlyKeyIDs) != 1 || status.DecryptOnlyKeyIDs[0] != old.ID() {
		t.Fatalf("GetStatus = %+v", status)
	}

	unknown, err := fernet.NewKeyring(mustGenerate(t)).Encrypt([]byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := fernet.NewKeyring(primary).EncryptAtTime([]byte(plaintext), 1_000)
	if err != nil {
		t.Fatal(err)
	}
	failures := []struct {
		data, reason string
		times        int
	}{
		{`{"token":"gAAAAA-not-a-token"}`, "MALFORMED", 3},
		{`{"token":"` + unknown.Token + `"}`, "INVALID_SIGNATURE", 2},
		{`{"token":"` + expired.Token + `","ttl_seconds":60}`, "EXPIRED", 1},
	}
	for _, f := range failures {
		for range f.times {
			_, stderr, err := call(t, f.data, "fernet.v1.FernetService/Decrypt")
			if err == nil || !strings.Contains(stderr, "InvalidArgument") || !strings.Contains(stderr, `"reason": "`+f.reason+`"`) {
				t.Fatalf("bad token: err %v, stderr:\n%s\nwant InvalidArgument with reason %s", err, stderr, f.reason)
			}
		}
	}

	metrics := s.metrics(t)
	for _, want := range []string{
		`fernet_decrypt_failures_total{reason="malformed"} 3`,
		`fernet_decrypt_failures_total{reason="invalid_signature"} 2`,
		`fernet_decrypt_failures_total{reason="expired"} 1`,
		`fernet_decrypt_failures_total{reason="future_timestamp"} 0`,
		`fernet_decryptions_total{key_role="primary"} 1`,
		`fernet_decryptions_total{key_role="decrypt_only"} 1`,
		`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Decrypt",grpc_service="fernet.v1.FernetService",grpc_type="unary"} 6`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	everything := metrics + s.stderr.String()
	for name, secret := range map[string]string{
		"primary key": primary.Encode(), "old key": old.Encode(), "token": encrypted.Token,
		"plaintext": plaintext, "plaintext as base64": base64.StdEncoding.EncodeToString([]byte(plaintext)),
	} {
		if strings.Contains(everything, secret) {
			t.Errorf("the %s appears in the logs or /metrics", name)
		}
	}
}

func callJSON(t *testing.T, call grpcurl, data, method string, into any) {
	t.Helper()
	out, stderr, err := call(t, data, method)
	if err != nil {
		t.Fatalf("grpcurl %s: %v\n%s", method, err, stderr)
	}
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("grpcurl %s printed %q: %v", method, out, err)
	}
}

func TestDevModeServesAtOnceAndKeepsItsKey(t *testing.T) {
	bin := buildSidecar(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dev.key")
	args := []string{"--dev", "--dev-key-file", keyFile, "--addr", "127.0.0.1:0", "--metrics-addr", ""}

	first := startSidecar(t, bin, nil, args...)
	if !strings.Contains(first.stderr.String(), "NOT FOR PRODUCTION") {
		t.Errorf("dev mode must warn loudly:\n%s", first.stderr)
	}
	first.stop(t)
	content, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := fernet.ParseKey(string(content))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(first.stderr.String(), key.Encode()) {
		t.Fatal("the dev key appears in the log")
	}

	second := startSidecar(t, bin, nil, args...)
	defer second.stop(t)
	if !strings.Contains(second.stderr.String(), fmt.Sprintf(`"primary_key_id":"%s"`, key.ID())) {
		t.Fatalf("restart must serve the same dev key %s:\n%s", key.ID(), second.stderr)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	bin := buildSidecar(t)
	s := startSidecar(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + mustGenerate(t).Encode()},
		"--addr", "127.0.0.1:0", "--metrics-addr", "", "--health-addr", "127.0.0.1:0")
	healthAddr := ""
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if _, rest, ok := strings.Cut(line, `"health_addr":"`); ok {
			healthAddr, _, _ = strings.Cut(rest, `"`)
		}
	}
	if healthAddr == "" {
		t.Fatalf("the serving log line does not name the health address:\n%s", s.stderr)
	}
	for _, addr := range []string{s.addr, healthAddr} {
		check := exec.Command(bin, "healthcheck", "--addr", addr)
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("healthcheck --addr %s while serving: %v\n%s", addr, err, out)
		}
	}
	s.stop(t)
	check := exec.Command(bin, "healthcheck", "--addr", s.addr, "--timeout", "1s")
	if out, err := check.CombinedOutput(); err == nil {
		t.Fatalf("healthcheck passed against a stopped sidecar:\n%s", out)
	}
}
