package client_test

import (
	"path/filepath"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// TestDjangoAsyncExample runs client/python/examples/django_async's tests,
// its async views on the asyncio client, with Django's own runner against
// the real sidecar on a Unix socket.
func TestDjangoAsyncExample(t *testing.T) {
	py := requirePython(t)
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	primary := newKey(t)
	addr := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + primary.Encode()},
		"--addr", "unix://"+filepath.Join(t.TempDir(), "fernet.sock"), "--metrics-addr", "").Addr
	runPython(t, py, []string{"SIDECAR_TEST_UNIX_TARGET=" + addr, "FERNET_SIDECAR_TARGET=" + addr, "SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode()},
		"-m", "django", "test", "examples.django_async", "--settings", "examples.django_async.settings", "--verbosity", "2")
}
