package client_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// pythonStubs are the files client/python/generate.sh makes, relative to
// its output directory.
var pythonStubs = []string{
	"fernet_sidecar/_pb/fernet_pb2.py",
	"fernet_sidecar/_pb/fernet_pb2_grpc.py",
	"fernet_sidecar/_pb/rpc_pb2.py",
}

// TestPythonStubsUpToDate runs generate.sh into a temp dir and requires
// the committed stubs to be what it makes, byte for byte.
func TestPythonStubsUpToDate(t *testing.T) {
	root := testenv.RepoRoot(t)
	testenv.LookPath(t, "bash")
	// Debian's protobuf-compiler and protobuf-compiler-grpc.
	protoc := testenv.LookPath(t, "/usr/bin/protoc")
	plugin := testenv.LookPath(t, "/usr/bin/grpc_python_plugin")

	out := t.TempDir()
	script := filepath.Join(root, "client", "python", "generate.sh")
	cmd := exec.CommandContext(t.Context(), "bash", script, out)
	cmd.Env = append(os.Environ(), "PROTOC="+protoc, "GRPC_PYTHON_PLUGIN="+plugin)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, output)
	}
	for _, rel := range pythonStubs {
		want, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatalf("generate.sh did not make %s: %v", rel, err)
		}
		got, err := os.ReadFile(filepath.Join(root, "client", "python", rel))
		switch {
		case os.IsNotExist(err):
			t.Errorf("client/python/%s is missing: run client/python/generate.sh and commit the result", rel)
		case err != nil:
			t.Fatal(err)
		case !bytes.Equal(got, want):
			t.Errorf("client/python/%s differs from what generate.sh makes from its .proto: do not edit it by hand; run client/python/generate.sh and commit the result", rel)
		}
	}
	// Everything in _pb is either made by generate.sh or its __init__.py.
	entries, err := os.ReadDir(filepath.Join(root, "client", "python", "fernet_sidecar", "_pb"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"__init__.py": true, "__pycache__": true}
	for _, rel := range pythonStubs {
		known[filepath.Base(rel)] = true
	}
	for _, entry := range entries {
		if !known[entry.Name()] {
			t.Errorf("client/python/fernet_sidecar/_pb/%s is not made by generate.sh: delete it", entry.Name())
		}
	}
}
