package schemacheck

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rootModule is the module path of the repository's root go.mod.
const rootModule = "github.com/fernet-sidecar/fernet-sidecar"

// repoRoot is the nearest directory above the working directory whose
// go.mod declares rootModule.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module\s+"?`+regexp.QuoteMeta(rootModule)+`"?\s*$`).Match(data) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal(errors.New("no go.mod declaring " + rootModule + " above the working directory"))
		}
		dir = parent
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// image is what the Dockerfile's final stage says about the container that
// the manifests run. deploy/dockerfile_test.go checks the Dockerfile itself
// against the binary; here it is the reference the manifests must match.
type image struct {
	uid, gid          string // USER
	entrypoint        string // the binary
	healthAddr        string // FERNET_SIDECAR_HEALTH_ADDR
	metricsAddr       string // FERNET_SIDECAR_METRICS_ADDR
	healthcheckTimout string // HEALTHCHECK --timeout
}

func readImage(t *testing.T, root string) image {
	t.Helper()
	dockerfile := readFile(t, filepath.Join(root, "Dockerfile"))
	find := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(dockerfile)
		if m == nil {
			t.Fatalf("Dockerfile: no match for %s", re)
		}
		return m[1]
	}
	user := find(`(?m)^USER (\d+:\d+)\s*$`)
	uid, gid, _ := strings.Cut(user, ":")
	return image{
		uid:               uid,
		gid:               gid,
		entrypoint:        find(`(?m)^ENTRYPOINT \["([^"]+)"\]\s*$`),
		healthAddr:        find(`\bFERNET_SIDECAR_HEALTH_ADDR=(\S+)`),
		metricsAddr:       find(`\bFERNET_SIDECAR_METRICS_ADDR=(\S+)`),
		healthcheckTimout: find(`(?m)^HEALTHCHECK .*--timeout=(\S+)`),
	}
}
