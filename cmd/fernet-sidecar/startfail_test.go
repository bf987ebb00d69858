package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// TestFailedStartLeavesNothingRunning: when one port is taken, or the key
// watch cannot start, the sidecar exits 1 having closed every port it
// opened and stopped every goroutine it started, the key watch's included.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// taken is the flag whose port another process holds ("" for none).
		taken   string
		vars    map[string]string
		wantErr string
	}{
		{name: "API port taken", taken: "--addr", wantErr: "listen on"},
		{name: "health port taken", taken: "--health-addr", wantErr: "listen on"},
		{name: "metrics port taken", taken: "--metrics-addr", wantErr: "listen for metrics"},
		{
			name: "key watch failing",
			// A salt file is watched even when no derivation reads it; its
			// directory does not exist, so the watch cannot start.
			vars:    map[string]string{"SALT_KEY_FILE": filepath.Join(t.TempDir(), "gone", "salts")},
			wantErr: "watch key directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := goroutines()
			ports := map[string]string{"--addr": freePort(t), "--health-addr": freePort(t), "--metrics-addr": freePort(t)}
			if tt.taken != "" {
				holder, err := net.Listen("tcp", ports[tt.taken])
				if err != nil {
					t.Fatal(err)
				}
				defer holder.Close()
			}
			// A key file, so that the key watch is running when a port
			// turns out to be taken.
			keyFile := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(keyFile, []byte(key.Encode()), 0o600); err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{"DJANGO_ENCRYPTION_KEY_FILE": keyFile}
			for name, value := range tt.vars {
				vars[name] = value
			}
			var args []string
			for flag, addr := range ports {
				args = append(args, flag, addr)
			}
			var stderr bytes.Buffer
			if code := run(args, env(vars), &stderr, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, &stderr)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr does not say %q:\n%s", tt.wantErr, &stderr)
			}
			for flag, addr := range ports {
				if flag == tt.taken {
					continue
				}
				lis, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("the port of %s is still open after a failed start: %v", flag, err)
					continue
				}
				lis.Close()
			}
			if left := goroutinesLeft(before); len(left) > 0 {
				t.Errorf("goroutines still running after a failed start:\n%s", strings.Join(left, "\n\n"))
			}
		})
	}
}

// freePort is a loopback address with no listener, for a flag that must
// name its port so that the test can bind it again afterwards.
func freePort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

var goroutineID = regexp.MustCompile(`^goroutine (\d+) `)

// goroutines maps the id of each running goroutine to its stack.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	all := map[string]string{}
	for _, stack := range strings.Split(string(buf), "\n\n") {
		if m := goroutineID.FindStringSubmatch(stack); m != nil {
			all[m[1]] = stack
		}
	}
	return all
}

// goroutinesLeft are the stacks of the goroutines started since before
// that are still running, after giving them a moment to end (as goleak
// does). The os/signal loop, started once per process, stays by design.
func goroutinesLeft(before map[string]string) []string {
	var left []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left = left[:0]
		for id, stack := range goroutines() {
			if _, old := before[id]; !old && !strings.Contains(stack, "os/signal.") && !strings.Contains(stack, "TestFailedStartLeavesNothingRunning") {
				left = append(left, stack)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			slices.Sort(left)
			return left
		}
	}
}
