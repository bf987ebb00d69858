package schemacheck

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// image is what the Dockerfile's final stage says about the container that
// the manifests run. TestDockerfile checks the Dockerfile itself against
// the binary; here it is the reference the manifests must match.
type image struct {
	uid, gid           string        // USER
	entrypoint         string        // the binary
	healthAddr         string        // FERNET_SIDECAR_HEALTH_ADDR
	metricsAddr        string        // FERNET_SIDECAR_METRICS_ADDR
	healthcheckTimeout time.Duration // HEALTHCHECK --timeout
}

func readImage(t *testing.T, root string) image {
	t.Helper()
	_, _, final := readDockerfile(t, root)
	users := commands[*instructions.UserCommand](final)
	entrypoints := commands[*instructions.EntrypointCommand](final)
	checks := commands[*instructions.HealthCheckCommand](final)
	if len(users) != 1 || len(entrypoints) != 1 || len(entrypoints[0].CmdLine) != 1 || len(checks) != 1 {
		t.Fatal("Dockerfile: want one USER, one ENTRYPOINT [binary] and one HEALTHCHECK in the final stage (TestDockerfile says more)")
	}
	uid, gid, _ := strings.Cut(users[0].User, ":")
	env := imageEnv(t, final)
	return image{
		uid:                uid,
		gid:                gid,
		entrypoint:         entrypoints[0].CmdLine[0],
		healthAddr:         env["FERNET_SIDECAR_HEALTH_ADDR"],
		metricsAddr:        env["FERNET_SIDECAR_METRICS_ADDR"],
		healthcheckTimeout: checks[0].Health.Timeout,
	}
}
