package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// keysChanged returns the primary key ids of the sidecar's "keys changed"
// log lines so far.
func keysChanged(s *sidecartest.Sidecar) []string {
	var ids []string
	for _, line := range strings.Split(s.Log(), "\n") {
		var entry struct {
			Msg          string `json:"msg"`
			AfterPrimary string `json:"after_primary_key_id"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "keys changed" {
			ids = append(ids, entry.AfterPrimary)
		}
	}
	return ids
}

// TestComposeSecretReload checks the key change procedure that
// docs/deployment.md gives for Compose. Compose mounts a file secret by
// bind-mounting the one file; this test does the same, in a mount namespace
// of the sidecar's own, and shows that: a change to the file is not noticed
// by the sidecar's watch; written in place and followed by SIGHUP, it is
// loaded; replaced by a new file, it is not seen even after SIGHUP.
func TestComposeSecretReload(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (to bind-mount a key file as Compose does, in a private mount namespace)")
	}
	unshare := testenv.LookPath(t, "unshare")
	bin := imageBinary(t)
	dir := t.TempDir()
	hostFile := filepath.Join(dir, "django_encryption_key.txt") // beside compose.yaml
	secrets := filepath.Join(dir, "run", "secrets")             // /run/secrets in the container
	mounted := filepath.Join(secrets, "django_encryption_key")
	if err := os.MkdirAll(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mounted, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	keyA, keyB, keyC := newKey(t), newKey(t), newKey(t)
	if err := os.WriteFile(hostFile, []byte(keyA+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}

	// unshare and sh exec, so the process started is the sidecar itself.
	s := sidecartest.Start(t, unshare,
		[]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DJANGO_ENCRYPTION_KEY_FILE=" + mounted},
		"--mount", "--propagation", "private", "sh", "-c", `mount --bind "$1" "$2" && exec "$3" --addr 127.0.0.1:0 --metrics-addr ""`,
		"sh", hostFile, mounted, bin)
	if !strings.Contains(s.Log(), `"primary_key_id":"`+keyID(t, keyA)+`"`) {
		t.Fatalf("the sidecar did not load the bind-mounted key:\n%s", s.Log())
	}

	waitForKeys := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := keysChanged(s)
			if strings.Join(got, ",") == strings.Join(want, ",") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("keys changed to %v, want %v:\n%s", got, want, s.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// In place: same file, new content. The watch on the file itself sees
	// it, with no SIGHUP.
	if err := os.WriteFile(hostFile, []byte(keyB+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	waitForKeys([]string{keyID(t, keyB)})

	// Replaced: the mount still shows the old file, SIGHUP or not.
	replacement := filepath.Join(dir, "new.txt")
	if err := os.WriteFile(replacement, []byte(keyC+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(replacement, hostFile); err != nil {
		t.Fatal(err)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	waitForKeys([]string{keyID(t, keyB)})
	s.Stop(t)
}
