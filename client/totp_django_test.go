package client_test

import (
	"os/exec"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// TestTOTPDjangoExample runs client/python/examples/totp_django's tests
// with Django's own runner, in a process of their own (their settings add
// django-otp), against the real sidecar on a Unix socket, and again on the
// in-process backend, as an app's test suite runs with no sidecar.
func TestTOTPDjangoExample(t *testing.T) {
	py := requirePython(t)
	if out, err := exec.Command(py, "-c", "import django_otp").CombinedOutput(); err != nil {
		testenv.Missing(t, "Python module django_otp (Debian package python3-django-otp): "+string(out))
	}
	primary := testkeys.New(t)
	addr := startUnixSidecar(t, primary)
	for _, settings := range []string{"test_settings", "test_settings_in_process"} {
		t.Run(settings, func(t *testing.T) {
			runPython(t, py, []string{"SIDECAR_TEST_UNIX_TARGET=" + addr, "SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode()},
				"-m", "django", "test", "examples.totp_django", "--settings", "examples.totp_django."+settings, "--verbosity", "2")
		})
	}
}
