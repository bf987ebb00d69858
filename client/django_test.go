package client_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// djangoDrivers are the database drivers the Django suite needs, with the
// Debian package of each.
var djangoDrivers = []struct{ module, deb string }{
	{"psycopg2", "python3-psycopg2"},
	{"MySQLdb", "python3-mysqldb"},
}

// TestDjango runs the Django suite (client/python/tests/djangotests) with
// Django's test runner against the real sidecar binary, on SQLite,
// PostgreSQL and MariaDB servers of its own, and once more on SQLite with
// the in-process backend.
func TestDjango(t *testing.T) {
	py := requirePython(t)
	for _, m := range djangoDrivers {
		if out, err := exec.Command(py, "-c", "import "+m.module).CombinedOutput(); err != nil {
			testenv.Missing(t, fmt.Sprintf("Python module %s (Debian package %s; %v: %s)", m.module, m.deb, err, strings.TrimSpace(string(out))))
		}
	}
	primary, old := testkeys.New(t), testkeys.New(t)
	env := []string{
		"SIDECAR_TEST_UNIX_TARGET=" + startUnixSidecar(t, primary, old),
		"SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode(),
		"SIDECAR_TEST_OLD_KEY=" + old.Encode(),
	}

	runs := []struct {
		name, db, backend string
		// server starts the database and returns its FERNET_DJANGO_DB_* settings.
		server func(t *testing.T) []string
	}{
		{"sqlite/sidecar", "sqlite", "sidecar", sqliteDir},
		{"sqlite/in-process", "sqlite", "in-process", sqliteDir},
		{"postgresql/sidecar", "postgresql", "sidecar", func(t *testing.T) []string {
			dsn, err := url.Parse(dbtest.StartPostgres(t).DSN)
			if err != nil {
				t.Fatal(err)
			}
			return []string{"FERNET_DJANGO_DB_HOST=" + dsn.Query().Get("host"), "FERNET_DJANGO_DB_USER=" + dsn.User.Username()}
		}},
		{"mariadb/sidecar", "mysql", "sidecar", func(t *testing.T) []string {
			my := dbtest.StartMariaDB(t)
			return []string{"FERNET_DJANGO_DB_HOST=" + my.Socket, "FERNET_DJANGO_DB_USER=" + my.User, "FERNET_DJANGO_DB_PASSWORD=" + my.Password}
		}},
	}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			runEnv := append(append([]string{"FERNET_DJANGO_DB=" + run.db, "FERNET_DJANGO_BACKEND=" + run.backend}, env...), run.server(t)...)
			runPython(t, py, runEnv, "-m", "django", "test", "tests.djangotests", "--pattern", "suite_*.py", "--settings", "tests.djangotests.settings", "--noinput")
		})
	}
}

func sqliteDir(t *testing.T) []string {
	return []string{"FERNET_DJANGO_DB_HOST=" + t.TempDir()}
}

// TestDjangoInstall installs the package the way an app would, into a venv
// over Debian's packages with Debian's pip and no network, and uses
// fernet_sidecar.django from outside the source tree.
func TestDjangoInstall(t *testing.T) {
	py := requirePython(t)
	if out, err := exec.Command(py, "-c", "import ensurepip, pip").CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("pip and venv for %s (Debian packages python3-pip, python3-venv; %v: %s)", py, err, strings.TrimSpace(string(out))))
	}
	dir := t.TempDir()
	// A copy: pip builds in the source tree, and the repository stays clean.
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("cp", "-r", filepath.Join(testenv.RepoRoot(t), "client", "python"), src).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	venv := filepath.Join(dir, "venv")
	work := filepath.Join(dir, "app")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PYTHONNOUSERSITE=1", "PYTHONPATH=", "PIP_NO_INDEX=1", "PIP_DISABLE_PIP_VERSION_CHECK=1",
			"PYTHONWARNINGS=ignore::DeprecationWarning")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(py, "-m", "venv", "--system-site-packages", venv)
	run(filepath.Join(venv, "bin", "pip"), "install", "--no-index", "--no-build-isolation", src+"[django]")
	primary := testkeys.New(t)
	key := primary.Encode()
	const app = `
import sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["fernet_sidecar.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    FERNET_SIDECAR={"BACKEND": "in-process", "KEYS": [sys.argv[1]]},
)
django.setup()
import fernet_sidecar, fernet_sidecar.django.fields
from django.core.management import call_command
print(fernet_sidecar.__file__)
call_command("fernet_status")
`
	out := run(filepath.Join(venv, "bin", "python"), "-c", app, key)
	if !strings.Contains(out, filepath.Join(venv, "lib")) {
		t.Errorf("fernet_sidecar was not imported from the venv:\n%s", out)
	}
	if !strings.Contains(out, "primary key") || !strings.Contains(out, "in-process") {
		t.Errorf("fernet_status in the venv said:\n%s", out)
	}

	// The same installed package against the real sidecar binary: a
	// token it makes there decrypts in Python's own Fernet.
	const client = `
import sys
from cryptography.fernet import Fernet
import fernet_sidecar
f = fernet_sidecar.SidecarFernet(sys.argv[1])
token = f.encrypt(b"JBSWY3DPEHPK3PXP")
assert Fernet(sys.argv[2]).decrypt(token) == b"JBSWY3DPEHPK3PXP"
print(fernet_sidecar.__file__, f.status().primary_key_id)
`
	out = run(filepath.Join(venv, "bin", "python"), "-c", client, startUnixSidecar(t, primary), key)
	if !strings.Contains(out, filepath.Join(venv, "lib")) || !strings.Contains(out, primary.ID()) {
		t.Errorf("the venv's client against the sidecar said:\n%s", out)
	}
}
