package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

func TestKeyFileReloadsWithoutRestart(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	first, second, third := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	writeKey := func(content string) {
		t.Helper()
		// Write then rename, as Kubernetes and editors do.
		tmp := keyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, keyFile); err != nil {
			t.Fatal(err)
		}
	}
	writeKey(first.Encode())
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY_FILE=" + keyFile},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	defer s.Stop(t)
	conn := servetest.Dial(t, s.Addr)
	client := fernetv1.NewFernetServiceClient(conn)
	primaryIs := func(want *fernet.Key, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			status, err := client.GetStatus(ctx, &fernetv1.GetStatusRequest{})
			cancel()
			if err != nil {
				t.Fatalf("GetStatus: %v", err)
			}
			if status.GetPrimaryKeyId() == want.ID() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("primary is %s, want %s:\n%s", status.GetPrimaryKeyId(), want.ID(), s.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	primaryIs(first, 0)

	writeKey(second.Encode())
	primaryIs(second, 5*time.Second)

	writeKey("garbage that is no key")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.Metrics(t), `fernet_key_reloads_total{outcome="failure"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("a bad key file was not counted as a failed reload:\n%s", s.Metrics(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	primaryIs(second, 0)
	if !strings.Contains(s.Metrics(t), "fernet_key_last_reload_successful 0") {
		t.Error("fernet_key_last_reload_successful should be 0 after a failed reload")
	}

	writeKey(third.Encode())
	primaryIs(third, 5*time.Second)
	if strings.Contains(s.Log(), "garbage that is no key") {
		t.Error("the bad key file's content appears in the log")
	}
}

func TestSIGHUPReloadsKeys(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	first, second := testkeys.New(t), testkeys.New(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(first.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY_FILE=" + keyFile},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--watch-keys=false")
	defer s.Stop(t)
	if err := os.WriteFile(keyFile, []byte(second.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // longer than a watcher would take
	if strings.Contains(s.Metrics(t), second.ID()) {
		t.Fatal("keys reloaded with --watch-keys=false before any SIGHUP")
	}
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.Metrics(t), `fernet_key_info{key_id="`+second.ID()+`",role="primary"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the keys:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
