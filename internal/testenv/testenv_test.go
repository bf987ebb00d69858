package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// fakeTB records what missing asked for instead of ending the test.
type fakeTB struct{ fatal, skip string }

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.skip = fmt.Sprintf(format, args...) }

func TestMissingPolicy(t *testing.T) {
	var full fakeTB
	missing(&full, true, `"buf"`)
	if full.fatal == "" || full.skip != "" {
		t.Errorf("full run: got fatal=%q skip=%q, want a failure", full.fatal, full.skip)
	}
	var plain fakeTB
	missing(&plain, false, `"buf"`)
	if plain.skip == "" || plain.fatal != "" {
		t.Errorf("plain run: got fatal=%q skip=%q, want a skip", plain.fatal, plain.skip)
	}
	for _, msg := range []string{full.fatal, plain.skip} {
		for _, want := range []string{`"buf"`, "go install -modfile=tools/go.mod tool", FullEnv} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not mention %q", msg, want)
			}
		}
	}
}

func TestFull(t *testing.T) {
	for val, want := range map[string]bool{"1": true, "": false, "0": false, "true": false} {
		t.Setenv(FullEnv, val)
		if got := Full(); got != want {
			t.Errorf("%s=%q: Full() = %v, want %v", FullEnv, val, got, want)
		}
	}
}

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestLookPath(t *testing.T) {
	root := t.TempDir()
	onPath := t.TempDir()
	writeExecutable(t, filepath.Join(root, ".tools", "bin", "onlylocal"))
	writeExecutable(t, filepath.Join(root, ".tools", "bin", "both"))
	writeExecutable(t, filepath.Join(onPath, "both"))
	t.Setenv("PATH", onPath)

	for _, tc := range []struct{ name, want string }{
		{"both", filepath.Join(onPath, "both")},                          // PATH wins
		{"onlylocal", filepath.Join(root, ".tools", "bin", "onlylocal")}, // then .tools/bin
		{filepath.Join(onPath, "both"), filepath.Join(onPath, "both")},   // a path is taken as it is
	} {
		got, err := lookPath(tc.name, root)
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, name := range []string{"nowhere", filepath.Join(root, "nowhere"), "/nonexistent/bin/onlylocal"} {
		if got, err := lookPath(name, root); err == nil {
			t.Errorf("lookPath(%q) = %q, want an error", name, got)
		}
	}
}

func TestFindRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot() = %q has no go.mod: %v", root, err)
	}
	// The tools module nested in the repo has its own go.mod, which must not
	// be taken for the root.
	for _, sub := range []string{"tools", "internal/testenv", "."} {
		got, err := findRepoRoot(filepath.Join(root, sub))
		if err != nil || got != root {
			t.Errorf("findRepoRoot(%q) = %q, %v; want %q", sub, got, err, root)
		}
	}
	if got, err := findRepoRoot(t.TempDir()); err == nil {
		t.Errorf("findRepoRoot(tempdir) = %q, want an error", got)
	}
}

func TestRaceSetting(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     bool
	}{
		{[]debug.BuildSetting{{Key: "-compiler", Value: "gc"}, {Key: "-race", Value: "true"}}, true},
		{[]debug.BuildSetting{{Key: "-race", Value: "false"}}, false},
		{[]debug.BuildSetting{{Key: "CGO_ENABLED", Value: "1"}}, false},
		{nil, false},
	} {
		if got := raceSetting(tc.settings); got != tc.want {
			t.Errorf("raceSetting(%v) = %v, want %v", tc.settings, got, tc.want)
		}
	}
}
