// Package sidecartest builds the real fernet-sidecar binary and runs it, for
// the end-to-end tests of every package.
package sidecartest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// Build builds the command in the repo's directory dir (e.g.
// "cmd/fernet-sidecar") into a temporary directory, and returns its path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(testenv.RepoRoot(t), dir)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// FlagDefaults reads a command's flags and their defaults from the -help
// output of bin with args (e.g. a subcommand), as the flag package prints
// them ("" when a flag shows none).
func FlagDefaults(t testing.TB, bin string, args ...string) map[string]string {
	t.Helper()
	out, _ := exec.Command(bin, append(args, "-help")...).CombinedOutput()
	defaults := map[string]string{}
	name := ""
	defaultRE := regexp.MustCompile(`\(default (.*)\)$`)
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			name = strings.Fields(rest)[0]
			defaults[name] = ""
			continue
		}
		if m := defaultRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil && name != "" {
			value := m[1]
			if unquoted, err := strconv.Unquote(value); err == nil {
				value = unquoted
			}
			defaults[name] = value
		}
	}
	if len(defaults) == 0 {
		t.Fatalf("%s %s -help lists no flags:\n%s", bin, strings.Join(args, " "), out)
	}
	return defaults
}

// Sidecar is a running sidecar process.
type Sidecar struct {
	Cmd *exec.Cmd
	// Addr, HealthAddr and MetricsAddr are the addresses it bound, as its
	// "serving" log line names them ("" when off).
	Addr, HealthAddr, MetricsAddr string

	log    Lines
	exited chan error
}

// Lines collects a process's log lines; it is safe for concurrent use.
type Lines struct {
	mu   sync.Mutex
	list []string
}

// Add appends one line.
func (l *Lines) Add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, line)
}

// String is every line so far, joined by newlines.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.list, "\n")
}

// Start runs bin with exactly env and args, and waits until it serves. The
// process is killed when the test ends, if it is still running.
func Start(t testing.TB, bin string, env []string, args ...string) *Sidecar {
	t.Helper()
	s := &Sidecar{Cmd: exec.Command(bin, args...), exited: make(chan error, 1)}
	s.Cmd.Env = env
	s.Cmd.Dir = t.TempDir()
	pipe, err := s.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan map[string]any, 1)
	go func() {
		scanner := bufio.NewScanner(pipe)
		for scanner.Scan() {
			s.log.Add(scanner.Text())
			var entry map[string]any
			if json.Unmarshal(scanner.Bytes(), &entry) == nil && entry["msg"] == "serving" {
				serving <- entry
			}
		}
		s.exited <- s.Cmd.Wait()
	}()
	t.Cleanup(func() {
		if s.Cmd.ProcessState == nil {
			s.Cmd.Process.Kill()
		}
	})
	select {
	case entry := <-serving:
		s.Addr, _ = entry["addr"].(string)
		s.HealthAddr, _ = entry["health_addr"].(string)
		s.MetricsAddr, _ = entry["metrics_addr"].(string)
	case err := <-s.exited:
		t.Fatalf("sidecar exited before serving (%v):\n%s", err, s.Log())
	case <-time.After(15 * time.Second):
		t.Fatalf("sidecar not serving after 15s:\n%s", s.Log())
	}
	return s
}

// Log is everything the process has logged so far.
func (s *Sidecar) Log() string { return s.log.String() }

// Exited reports the process's exit, once.
func (s *Sidecar) Exited() <-chan error { return s.exited }

// Stop sends SIGTERM and requires a clean exit within 10 s.
func (s *Sidecar) Stop(t testing.TB) {
	t.Helper()
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Log())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM:\n%s", s.Log())
	}
}

// Metrics scrapes its /metrics.
func (s *Sidecar) Metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + s.MetricsAddr + "/metrics")
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
