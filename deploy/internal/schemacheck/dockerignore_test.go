package schemacheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// dockerIgnore returns the repository's .dockerignore as Docker's own
// matcher reads it.
func dockerIgnore(t *testing.T, root string) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func excluded(t *testing.T, pm *patternmatcher.PatternMatcher, path string) bool {
	t.Helper()
	ex, err := pm.MatchesOrParentMatches(filepath.ToSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// TestDockerIgnore checks, with Docker's matcher, that the build context
// keeps every file the build needs and no key file wherever it lies.
func TestDockerIgnore(t *testing.T) {
	root := testenv.RepoRoot(t)
	pm := dockerIgnore(t, root)
	for _, path := range []string{
		".git/config",
		".tools/bin/grpcurl",
		".fernet-sidecar-dev.key",                    // go run ./cmd/fernet-sidecar --dev
		"cmd/fernet-sidecar/.fernet-sidecar-dev.key", // the same, run from elsewhere
		"deploy/compose/django_encryption_key.txt",
		"deploy/compose/old_django_encryption_key.txt",
		"somewhere/tls.pem",
		"fernet-sidecar", // a local build
		"deploy/deploy.test",
	} {
		if !excluded(t, pm, path) {
			t.Errorf(".dockerignore lets %s into the build context", path)
		}
	}

	// What go build needs: go.mod, go.sum and the root module's non-test
	// Go files (nested modules, like this one, are not built).
	needed := []string{"go.mod", "go.sum", "Dockerfile"}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || fileExists(filepath.Join(path, "go.mod"))) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") {
			needed = append(needed, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(needed) < 10 {
		t.Fatalf("found only %v to build from", needed)
	}
	for _, path := range needed {
		if excluded(t, pm, path) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", path)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
