package client_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// TestTOTPDjangoExample runs client/python/examples/totp_django's tests
// with Django's own runner, in a process of their own (their settings add
// django-otp), against the real sidecar on a Unix socket.
func TestTOTPDjangoExample(t *testing.T) {
	py := requirePython(t)
	if out, err := exec.Command(py, "-c", "import django_otp").CombinedOutput(); err != nil {
		testenv.Missing(t, "Python module django_otp (Debian package python3-django-otp): "+string(out))
	}
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	primary := testkeys.New(t)
	addr := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + primary.Encode()},
		"--addr", "unix://"+filepath.Join(t.TempDir(), "fernet.sock"), "--metrics-addr", "").Addr
	runPython(t, py, []string{"SIDECAR_TEST_UNIX_TARGET=" + addr, "SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode()},
		"-m", "django", "test", "examples.totp_django", "--settings", "examples.totp_django.test_settings", "--verbosity", "2")
}
