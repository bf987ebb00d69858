// Package testenv decides what a test does when something it needs from
// outside Go (buf, grpcurl, python3, ...) is not installed.
//
// The policy is one rule: when FERNET_SIDECAR_FULL=1 (scripts/test sets it)
// a missing prerequisite fails the test, because the full run must test
// everything; otherwise the test is skipped with a hint on how to install
// it, so a plain `go test ./...` works on any machine.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// FullEnv is the environment variable that, set to "1", turns a missing
// prerequisite from a skip into a failure.
const FullEnv = "FERNET_SIDECAR_FULL"

// ModulePath is the path of the repository's root Go module; RepoRoot looks
// for the go.mod that declares it.
const ModulePath = "github.com/fernet-sidecar/fernet-sidecar"

// ToolsBin is where the pinned Go tools are installed, relative to the repo
// root.
const ToolsBin = ".tools/bin"

// InstallHint says how to get everything the tests need.
const InstallHint = "run scripts/test, which installs everything the tests need; " +
	"or install just the pinned Go tools (buf, grpcurl, ...) from the repo root with: " +
	"GOBIN=$PWD/.tools/bin go install -modfile=tools/go.mod tool"

// Full reports whether FERNET_SIDECAR_FULL=1, that is whether missing
// prerequisites fail tests instead of skipping them.
func Full() bool { return os.Getenv(FullEnv) == "1" }

// policy is the part of testing.TB that Missing uses, so that the policy can
// be tested without failing a real test.
type policy interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Missing ends the test because something it needs is not available: it
// fails when Full() and skips otherwise. what names the missing thing and
// may say how to install it.
func Missing(t testing.TB, what string) {
	t.Helper()
	missing(t, Full(), what)
}

func missing(t policy, full bool, what string) {
	t.Helper()
	if full {
		t.Fatalf("%s is required because %s=1: %s", what, FullEnv, InstallHint)
		return
	}
	t.Skipf("skipping: %s is not available (%s; set %s=1 to make this a failure)", what, InstallHint, FullEnv)
}

// LookPath returns the absolute path of the executable name, searched on
// PATH and then in <repo>/.tools/bin. A name containing a slash, such as
// "/usr/bin/python3", is checked as it is. If it is not found the test ends
// as Missing says.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := lookPath(name, RepoRoot(t))
	if err != nil {
		Missing(t, fmt.Sprintf("%q (%v)", name, err))
		return ""
	}
	return path
}

func lookPath(name, root string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return filepath.Abs(path)
	}
	if strings.ContainsRune(name, filepath.Separator) || strings.ContainsRune(name, '/') {
		return "", err
	}
	local := filepath.Join(root, filepath.FromSlash(ToolsBin), name)
	if _, lerr := exec.LookPath(local); lerr == nil {
		return local, nil
	}
	return "", fmt.Errorf("not on PATH nor in %s", filepath.Join(root, filepath.FromSlash(ToolsBin)))
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory whose go.mod declares ModulePath. The test fails if
// there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	root, err := findRepoRoot(wd)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

func findRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && modfile.ModulePath(data) == ModulePath {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod declaring module " + ModulePath + " at or above " + dir)
		}
		d = parent
	}
}

// RaceEnabled reports whether this test binary was built with -race, so
// that a test that runs nested go commands can run them the same way.
func RaceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	return ok && raceSetting(info.Settings)
}

func raceSetting(settings []debug.BuildSetting) bool {
	for _, s := range settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
