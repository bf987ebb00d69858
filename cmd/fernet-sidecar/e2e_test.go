package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

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

func TestEndToEnd(t *testing.T) {
	testenv.LookPath(t, "grpcurl")
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	primary, old := testkeys.New(t), testkeys.New(t)
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
			s := sidecartest.Start(t, bin, env, "--addr", transport.addr, "--metrics-addr", "127.0.0.1:0")
			call := grpcurlFor(t, s.Addr)
			checkSession(t, s, call, primary, old)
			s.Stop(t)
			if path, isUnix := strings.CutPrefix(s.Addr, "unix://"); isUnix {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Errorf("socket %s left behind after shutdown", path)
				}
			}
		})
	}
}

func checkSession(t *testing.T, s *sidecartest.Sidecar, call grpcurl, primary, old *fernet.Key) {
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

	unknown, err := fernet.NewKeyring(testkeys.New(t)).Encrypt([]byte(plaintext))
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

	metrics := s.Metrics(t)
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

	everything := metrics + s.Log()
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
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dev.key")
	args := []string{"--dev", "--dev-key-file", keyFile, "--addr", "127.0.0.1:0", "--metrics-addr", ""}

	first := sidecartest.Start(t, bin, nil, args...)
	if !strings.Contains(first.Log(), "NOT FOR PRODUCTION") {
		t.Errorf("dev mode must warn loudly:\n%s", first.Log())
	}
	first.Stop(t)
	content, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := fernet.ParseKey(string(content))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(first.Log(), key.Encode()) {
		t.Fatal("the dev key appears in the log")
	}

	second := sidecartest.Start(t, bin, nil, args...)
	defer second.Stop(t)
	if !strings.Contains(second.Log(), fmt.Sprintf(`"primary_key_id":"%s"`, key.ID())) {
		t.Fatalf("restart must serve the same dev key %s:\n%s", key.ID(), second.Log())
	}
}

func TestHealthcheckCommand(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + testkeys.New(t).Encode()},
		"--addr", "127.0.0.1:0", "--metrics-addr", "", "--health-addr", "127.0.0.1:0")
	healthAddr := s.HealthAddr
	if healthAddr == "" {
		t.Fatalf("the serving log line does not name the health address:\n%s", s.Log())
	}
	for _, addr := range []string{s.Addr, healthAddr} {
		check := exec.Command(bin, "healthcheck", "--addr", addr)
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("healthcheck --addr %s while serving: %v\n%s", addr, err, out)
		}
	}
	s.Stop(t)
	check := exec.Command(bin, "healthcheck", "--addr", s.Addr, "--timeout", "1s")
	if out, err := check.CombinedOutput(); err == nil {
		t.Fatalf("healthcheck passed against a stopped sidecar:\n%s", out)
	}
}

func TestGCDefaultsAndTheEnvironmentWins(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	key := "DJANGO_ENCRYPTION_KEY=" + testkeys.New(t).Encode()
	for _, tt := range []struct {
		name string
		env  []string
		want []string
	}{
		{"unset", []string{key}, []string{"go_gc_gogc_percent 200\n", "go_gc_gomemlimit_bytes 6.7108864e+07\n"}},
		{"set", []string{key, "GOGC=50", "GOMEMLIMIT=100MiB"}, []string{"go_gc_gogc_percent 50\n", "go_gc_gomemlimit_bytes 1.048576e+08\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := sidecartest.Start(t, bin, tt.env, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
			metrics := s.Metrics(t)
			for _, want := range tt.want {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
		})
	}
}
