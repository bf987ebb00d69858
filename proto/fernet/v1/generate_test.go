package fernetv1_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// TestGeneratedCodeUpToDate lints the protos and regenerates the Go code
// into a temporary directory with the repo's buf.gen.yaml, then checks that
// every generated file is committed byte for byte, and that no committed
// generated file is stale.
func TestGeneratedCodeUpToDate(t *testing.T) {
	root := testenv.RepoRoot(t)
	buf := testenv.LookPath(t, "buf")
	// buf.gen.yaml names local plugins, which buf looks up on PATH.
	var dirs []string
	for _, plugin := range []string{"protoc-gen-go", "protoc-gen-go-grpc"} {
		dirs = append(dirs, filepath.Dir(testenv.LookPath(t, plugin)))
	}
	env := append(os.Environ(), "PATH="+strings.Join(append(dirs, os.Getenv("PATH")), string(os.PathListSeparator)))
	tools := "buf at " + buf + ", plugins in " + strings.Join(slices.Compact(slices.Clone(dirs)), ", ")

	run := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), buf, args...)
		cmd.Dir = root
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buf %s: %v\n%s(%s)", strings.Join(args, " "), err, out, tools)
		}
	}

	run("lint")

	out := t.TempDir()
	run("generate", "--template", filepath.Join(root, "buf.gen.yaml"), "-o", out)

	generated := map[string]bool{}
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(out, path)
		if err != nil {
			return err
		}
		generated[filepath.ToSlash(rel)] = true
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(root, rel))
		switch {
		case os.IsNotExist(err):
			t.Errorf("%s is missing: run `buf generate` in the repo root (with .tools/bin on PATH) and commit the result", rel)
		case err != nil:
			return err
		case !bytes.Equal(got, want):
			t.Errorf("%s differs from what buf generate makes (%s): do not edit it by hand; run `buf generate` in the repo root (with .tools/bin on PATH) and commit the result", rel, tools)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) == 0 {
		t.Fatalf("buf generate made no files in %s", out)
	}

	// A committed generated file that buf no longer makes is stale (its
	// .proto was removed or renamed).
	err = filepath.WalkDir(filepath.Join(root, "proto"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.go") {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if !generated[filepath.ToSlash(rel)] {
			t.Errorf("%s is not made by buf generate any more: delete it, run `buf generate` in the repo root and commit the result", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
