package client_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testpki"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// python is Debian's interpreter, the one whose packages the tests need.
const python = "/usr/bin/python3"

// pythonModules are what the Python client and its tests import, with the
// Debian package of each.
var pythonModules = []struct{ module, deb string }{
	{"grpc", "python3-grpcio"},
	{"google.protobuf", "python3-protobuf"},
	{"cryptography.fernet", "python3-cryptography"},
	{"django", "python3-django"},
	{"flask", "python3-flask"},
	{"flask_sqlalchemy", "python3-flask-sqlalchemy"},
	{"sqlalchemy", "python3-sqlalchemy"},
	{"asgiref", "python3-asgiref"},
	{"pyotp", "python3-pyotp"},
	{"psycopg2", "python3-psycopg2"},
	{"prometheus_client", "python3-prometheus-client"},
}

// requirePython returns python when it and every module are there; else
// the test ends as testenv.Missing says.
func requirePython(t *testing.T) string {
	t.Helper()
	bin := testenv.LookPath(t, python)
	for _, m := range pythonModules {
		if out, err := exec.Command(bin, "-c", "import "+m.module).CombinedOutput(); err != nil {
			testenv.Missing(t, fmt.Sprintf("Python module %s for %s (Debian package %s; %v: %s)", m.module, bin, m.deb, err, strings.TrimSpace(string(out))))
		}
	}
	return bin
}

// TestPythonClient runs the Python client's unittest suite
// (client/python/tests) against the real sidecar binary, started with
// known keys on the loopback, on a Unix socket, and with mTLS.
func TestPythonClient(t *testing.T) {
	py := requirePython(t)
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	primary, old := newKey(t), newKey(t)
	const maxPlaintext, maxBatchItems = 1024, 8
	env := []string{
		"DJANGO_ENCRYPTION_KEY=" + primary.Encode(),
		"OLD_DJANGO_ENCRYPTION_KEY=" + old.Encode(),
	}
	args := []string{"--metrics-addr", "", "--max-plaintext-bytes", fmt.Sprint(maxPlaintext), "--max-batch-items", fmt.Sprint(maxBatchItems)}
	tcp := sidecartest.Start(t, bin, env, append([]string{"--addr", "127.0.0.1:0"}, args...)...).Addr
	unix := sidecartest.Start(t, bin, env, append([]string{"--addr", "unix://" + filepath.Join(t.TempDir(), "fernet.sock")}, args...)...).Addr
	ca, serverCert, serverKey, clientCert, clientKey := testpki.New(t).Write(t, t.TempDir())
	// The SQLAlchemy and Flask tests' PostgreSQL, as SQLAlchemy's URL.
	pg := dbtest.StartPostgres(t)
	postgresURL := strings.Replace(strings.Replace(pg.CreateDatabase(t, "flask"), "postgres://", "postgresql+psycopg2://", 1), "&sslmode=disable", "", 1)
	withTLS := sidecartest.Start(t, bin, env, append([]string{"--addr", "127.0.0.1:0",
		"--tls-cert-file", serverCert, "--tls-key-file", serverKey, "--tls-client-ca-file", ca}, args...)...).Addr

	runPython(t, py, []string{
		"SIDECAR_TEST_TCP_TARGET=" + tcp,
		"SIDECAR_TEST_UNIX_TARGET=" + unix,
		"SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode(),
		"SIDECAR_TEST_OLD_KEY=" + old.Encode(),
		fmt.Sprintf("SIDECAR_TEST_MAX_PLAINTEXT=%d", maxPlaintext),
		fmt.Sprintf("SIDECAR_TEST_MAX_BATCH_ITEMS=%d", maxBatchItems),
		"SIDECAR_TEST_TLS_TARGET=" + withTLS,
		"SIDECAR_TEST_POSTGRES_URL=" + postgresURL,
		"SIDECAR_TEST_TLS_CA=" + ca,
		"SIDECAR_TEST_TLS_CLIENT_CERT=" + clientCert,
		"SIDECAR_TEST_TLS_CLIENT_KEY=" + clientKey,
	}, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
}

// runPython runs Debian's Python in client/python with env added, and
// fails the test when it fails or, under FERNET_SIDECAR_FULL=1, skips
// anything.
func runPython(t *testing.T, py string, env []string, args ...string) {
	t.Helper()
	cmd := pythonCommand(t, py, env, args...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s:\n%s", py, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("failed: %v", err)
	}
	if testenv.Full() && strings.Contains(string(out), "skipped") {
		t.Fatalf("tests were skipped, and %s=1 runs everything", testenv.FullEnv)
	}
}

// pythonCommand is Debian's Python with args, to run in client/python with
// env added.
func pythonCommand(t *testing.T, py string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), py, args...)
	cmd.Dir = filepath.Join(testenv.RepoRoot(t), "client", "python")
	cmd.Env = append(append(os.Environ(), env...),
		testenv.FullEnv+"="+os.Getenv(testenv.FullEnv),
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONNOUSERSITE=1",
		"PYTHONPATH=",
		// Debian's Django 3.2 on Python 3.11 warns about cgi and locale.
		"PYTHONWARNINGS=ignore::DeprecationWarning",
	)
	return cmd
}

// startUnixSidecar builds the real sidecar and starts it on a Unix socket
// with the keys, primary first, as DJANGO_ENCRYPTION_KEY and
// OLD_DJANGO_ENCRYPTION_KEY; it returns the address to dial.
func startUnixSidecar(t *testing.T, primary *fernet.Key, old ...*fernet.Key) string {
	t.Helper()
	env := []string{"DJANGO_ENCRYPTION_KEY=" + primary.Encode()}
	for _, k := range old {
		env = append(env, "OLD_DJANGO_ENCRYPTION_KEY="+k.Encode())
	}
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	return sidecartest.Start(t, bin, env, "--addr", "unix://"+filepath.Join(t.TempDir(), "fernet.sock"), "--metrics-addr", "").Addr
}
