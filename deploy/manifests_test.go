package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// TestManifests runs the tests of the nested module internal/schemacheck,
// which decode the Kubernetes manifests, the Compose file, .dockerignore and
// the Dockerfile with the Kubernetes, prometheus-operator, Compose, Docker
// and BuildKit libraries.
// They live in a module of their own so that the sidecar's module does not
// depend on those libraries; `go test ./...` at the root does not enter a
// nested module, so this test does, with the same -race setting, and holds
// the module to the same go vet and staticcheck as the rest.
func TestManifests(t *testing.T) {
	testNestedModule(t, filepath.Join(testenv.RepoRoot(t), "deploy", "internal", "schemacheck"))
}

// testNestedModule runs go vet, staticcheck and go test (with -race if this
// test has it) in the module at dir.
func testNestedModule(t *testing.T, dir string) {
	t.Helper()
	staticcheck := testenv.LookPath(t, "staticcheck")
	testArgs := []string{"test", "-count=1"}
	if testenv.RaceEnabled() {
		testArgs = append(testArgs, "-race")
	}
	if testing.Verbose() {
		testArgs = append(testArgs, "-v")
	}
	for _, step := range [][]string{
		{"go", "vet", "./..."},
		{staticcheck, "./..."},
		append(append([]string{"go"}, testArgs...), "./..."),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		cmd := exec.CommandContext(ctx, step[0], step[1:]...)
		cmd.Dir = dir
		// GOFLAGS=-mod=mod and the like from outside would let the nested
		// module drift from its go.sum unnoticed.
		cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"), "GOWORK=off")
		out, err := cmd.CombinedOutput()
		cancel()
		name := filepath.Base(step[0]) + " " + strings.Join(step[1:], " ")
		if err != nil {
			t.Fatalf("in %s: %s: %v\n%s", dir, name, err, out)
		}
		t.Logf("%s:\n%s", name, out)
	}
}
