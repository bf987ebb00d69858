package client_test

import (
	"os/exec"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// TestTOTPDjangoExampleInProcess runs the same tests as
// TestTOTPDjangoExample on the in-process backend, with no sidecar: an app
// whose second factor uses create_totp and verify_totp runs its test suite
// that way.
func TestTOTPDjangoExampleInProcess(t *testing.T) {
	py := requirePython(t)
	if out, err := exec.Command(py, "-c", "import django_otp").CombinedOutput(); err != nil {
		testenv.Missing(t, "Python module django_otp (Debian package python3-django-otp): "+string(out))
	}
	primary := testkeys.New(t)
	runPython(t, py, []string{"SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode()},
		"-m", "django", "test", "examples.totp_django", "--settings", "examples.totp_django.test_settings_in_process", "--verbosity", "2")
}
