package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/keysource"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// TestKeyInTheEnvironment: a key given as a variable stays readable in
// /proc/PID/environ by the user's other processes, so the sidecar warns of
// it once, and makes itself non-dumpable, which takes /proc/PID/environ
// and /proc/PID/mem from its own user (they become root's).
func TestKeyInTheEnvironment(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run the sidecar as another user and see who owns its /proc files")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // the test's temp directories are the test user's only
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "fernet-sidecar")
	built, err := os.ReadFile(sidecartest.Build(t, "cmd/fernet-sidecar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, built, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--metrics-addr", "")
	cmd.Env = []string{"DJANGO_ENCRYPTION_KEY=" + testkeys.New(t).Encode()}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var warnings []string
	serving := make(chan bool, 1)
	go func() {
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			var entry map[string]any
			json.Unmarshal(scanner.Bytes(), &entry)
			if entry["level"] == "WARN" {
				warnings = append(warnings, scanner.Text())
			}
			if entry["msg"] == "serving" {
				serving <- true
			}
		}
		serving <- false
	}()
	select {
	case ok := <-serving:
		if !ok {
			t.Fatal("the sidecar exited before serving")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("not serving after 15 s")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "DJANGO_ENCRYPTION_KEY") || !strings.Contains(warnings[0], "_FILE") {
		t.Errorf("warnings = %q, want one naming DJANGO_ENCRYPTION_KEY and the _FILE form", warnings)
	}
	for _, file := range []string{"environ", "mem"} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), file), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid == nobody {
			t.Errorf("/proc/PID/%s belongs to the sidecar's own user: it is still dumpable", file)
		}
	}
}

// TestDerivedKeyIDsStayOffMetrics: with a key derived from a Django
// secret, /metrics and the logs (key loads and per-call audit lines) name
// it "derived", never by its id, which would let a scraper or a log
// reader test guesses of the secret offline.
func TestDerivedKeyIDsStayOffMetrics(t *testing.T) {
	const secret = "django-insecure-a-guessable-secret"
	derived, err := keysource.DjangoFernetFieldsKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(keyFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY_FILE=" + keyFile},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--key-derivation", "django-fernet-fields", "--audit-calls")
	client := fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sealed, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte("secret")})
	if err != nil || sealed.GetKeyId() != derived.ID() {
		t.Fatalf("Encrypt = %v, %v; want the derived key, %s, to make the token", sealed, err, derived.ID())
	}
	metrics := s.Metrics(t)
	if strings.Contains(metrics, derived.ID()) {
		t.Error("/metrics names the derived key's id")
	}
	if !strings.Contains(metrics, `fernet_key_info{key_id="derived",role="primary"} 1`) {
		t.Error(`/metrics lacks fernet_key_info{key_id="derived",role="primary"}`)
	}
	s.Stop(t)
	log := s.Log()
	for _, line := range []string{`"msg":"keys loaded","audit":true,"primary_key_id":"derived"`, `"method":"/fernet.v1.FernetService/Encrypt","code":"OK","reason":"","key_ids":["derived"]`} {
		if !strings.Contains(log, line) {
			t.Errorf("the log lacks %q:\n%s", line, log)
		}
	}
	if strings.Contains(log, derived.ID()) {
		t.Errorf("the log names the derived key's id:\n%s", log)
	}
}
