package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixSocketIsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fernet.sock")
	lis, err := Listen("unix://"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v (%v), want 0600", info.Mode().Perm(), err)
	}
}

func TestListenReplacesOnlyStaleSockets(t *testing.T) {
	dir := t.TempDir()

	stale := filepath.Join(dir, "stale.sock")
	crashed, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	crashed.(*net.UnixListener).SetUnlinkOnClose(false)
	crashed.Close() // the file stays, as after a crash
	lis, err := Listen("unix://"+stale, "")
	if err != nil {
		t.Fatalf("a stale socket must be replaced: %v", err)
	}
	lis.Close()

	live := filepath.Join(dir, "live.sock")
	other, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := Listen("unix://"+live, ""); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Listen on a live socket = %v, want an 'in use' error", err)
	}

	regular := filepath.Join(dir, "data.db")
	if err := os.WriteFile(regular, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix://"+regular, ""); err == nil {
		t.Fatal("Listen must refuse a path that is a regular file")
	}
	if content, _ := os.ReadFile(regular); string(content) != "precious" {
		t.Fatal("a regular file at the socket path must never be removed")
	}
}

func TestListenTCP(t *testing.T) {
	lis, err := Listen("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()
	if _, err := Listen("unix://", ""); err == nil {
		t.Fatal("an empty socket path must be refused")
	}
}

// TestListenUnixSocketIsNeverReachableUnrestricted: the socket appears at
// its path already restricted, and nothing of its making is left beside it.
func TestListenUnixSocketIsNeverReachableUnrestricted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fernet.sock")
	lis, err := Listen("unix://"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := lis.Addr().String(); got != path {
		t.Errorf("Addr = %s, want %s", got, path)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the socket's directory holds %d entries, want only the socket", len(entries))
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the moved socket: %v", err)
	}
	conn.Close()
	lis.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatal("Close must remove the socket")
	}
}

// TestListenNeverFollowsALink: a symbolic link at the socket path, as
// another user could leave in a shared directory, is refused and left
// alone, and its target is not touched.
func TestListenNeverFollowsALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fernet.sock")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix://"+path, ""); err == nil {
		t.Fatal("Listen must refuse a symbolic link at the socket path")
	}
	info, err := os.Stat(target)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("the link's target changed: %v, %v", info.Mode(), err)
	}
}
