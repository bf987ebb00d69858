package schemacheck

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// loadCompose loads a Compose file as `docker compose` does, validating it
// against the Compose specification's schema, which refuses unknown keys.
func loadCompose(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	options, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithName("fernet-example"),
		cli.WithEnv(nil),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return options.LoadProject(ctx)
}

// TestComposeLoaderRefuses shows that the loader the Compose file passes is
// strict: a misspelt key fails.
func TestComposeLoaderRefuses(t *testing.T) {
	root := testenv.RepoRoot(t)
	good := readFile(t, filepath.Join(root, "deploy", "compose", "compose.yaml"))
	for name, edit := range map[string][2]string{
		"service key":   {"    read_only: true\n", "    readonly: true\n"},
		"top-level key": {"\nsecrets:\n", "\nsecret:\n"},
		"healthcheck":   {"      start_period: 10s\n", "      startperiod: 10s\n"},
	} {
		if !strings.Contains(good, edit[0]) {
			t.Fatalf("%s: compose.yaml has no %q to break", name, edit[0])
		}
		path := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(path, []byte(strings.Replace(good, edit[0], edit[1], 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadCompose(t, path); err == nil {
			t.Errorf("%s: compose.yaml with %q loads without error", name, strings.TrimSpace(edit[1]))
		}
	}
}

// TestCompose loads deploy/compose/compose.yaml and checks what it
// promises: the app shares the sidecar's network namespace, so the API
// stays on loopback; the key is a Compose secret that the sidecar reads as
// a file and that stays out of images and git; the sidecar runs as the
// image's user, hardened, with the image's health check.
func TestCompose(t *testing.T) {
	root := testenv.RepoRoot(t)
	img := readImage(t, root)
	dir := filepath.Join(root, "deploy", "compose")
	project, err := loadCompose(t, filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if names := project.ServiceNames(); !slices.Equal(sorted(names), []string{"app", "fernet-sidecar"}) {
		t.Fatalf("services %v, want app and fernet-sidecar", names)
	}
	sidecar, app := project.Services["fernet-sidecar"], project.Services["app"]

	// The app joins the sidecar's network namespace and publishes nothing
	// itself; nothing publishes the API.
	if app.NetworkMode != "service:fernet-sidecar" {
		t.Errorf("app network_mode %q, want service:fernet-sidecar", app.NetworkMode)
	}
	if dep, ok := app.DependsOn["fernet-sidecar"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("app depends_on %v: want fernet-sidecar, condition service_healthy", app.DependsOn)
	}
	if target := app.Environment["FERNET_SIDECAR_TARGET"]; target == nil || *target != "localhost:50051" {
		t.Errorf("app FERNET_SIDECAR_TARGET %v, want localhost:50051", target)
	}
	if len(app.Secrets) > 0 {
		t.Errorf("app mounts secrets %v: only the sidecar holds the keys", app.Secrets)
	}
	for _, p := range sidecar.Ports {
		if p.Target == 50051 {
			t.Errorf("port %v publishes the API", p)
		}
		if p.HostIP != "127.0.0.1" {
			t.Errorf("port %v is published on every host interface; bind it to 127.0.0.1", p)
		}
	}
	if addr := sidecar.Environment["FERNET_SIDECAR_ADDR"]; addr != nil {
		t.Errorf("FERNET_SIDECAR_ADDR=%s: the API stays on the image's loopback default", *addr)
	}
	metricsPublished := false
	for _, p := range sidecar.Ports {
		metricsPublished = metricsPublished || ":"+strconv.FormatUint(uint64(p.Target), 10) == img.metricsAddr
	}
	if !metricsPublished {
		t.Errorf("no port publishes the image's metrics address %s", img.metricsAddr)
	}

	// Keys: Compose secrets read as files; no key in the environment; the
	// files stay out of the image build context and out of git.
	for _, name := range []string{"DJANGO_ENCRYPTION_KEY", "OLD_DJANGO_ENCRYPTION_KEY"} {
		if _, set := sidecar.Environment[name]; set {
			t.Errorf("%s is set directly: the key comes from a secret file", name)
		}
	}
	pm := dockerIgnore(t, root)
	gitignore := readFile(t, filepath.Join(dir, ".gitignore"))
	for variable, secretName := range map[string]string{
		"DJANGO_ENCRYPTION_KEY_FILE":     "django_encryption_key",
		"OLD_DJANGO_ENCRYPTION_KEY_FILE": "old_django_encryption_key",
	} {
		value := sidecar.Environment[variable]
		var mounted *types.ServiceSecretConfig
		for i, s := range sidecar.Secrets {
			if s.Source == secretName {
				mounted = &sidecar.Secrets[i]
			}
		}
		if mounted == nil {
			t.Errorf("the sidecar does not mount the secret %s", secretName)
			continue
		}
		target := mounted.Target
		if target == "" {
			target = secretName
		}
		if !filepath.IsAbs(target) {
			target = "/run/secrets/" + target
		}
		if value == nil || *value != target {
			got := "unset"
			if value != nil {
				got = *value
			}
			t.Errorf("%s=%s; the secret %s is mounted at %s", variable, got, secretName, target)
		}
		secret, ok := project.Secrets[secretName]
		if !ok || secret.File == "" {
			t.Errorf("secret %s is not file-based", secretName)
			continue
		}
		rel, err := filepath.Rel(root, secret.File)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("secret %s file %s is outside the repository", secretName, secret.File)
			continue
		}
		if !excluded(t, pm, rel) {
			t.Errorf(".dockerignore lets the key file %s into the build context (compose builds from the repository root)", rel)
		}
		if !gitignored(gitignore, filepath.Base(secret.File)) {
			t.Errorf("deploy/compose/.gitignore does not keep %s out of git", filepath.Base(secret.File))
		}
	}
	if sidecar.Build == nil || filepath.Clean(sidecar.Build.Context) != root {
		t.Errorf("the sidecar builds from %v, want the repository root %s, where the Dockerfile is", sidecar.Build, root)
	}

	// Hardening and health.
	if sidecar.User != img.uid+":"+img.gid {
		t.Errorf("the sidecar runs as %q; the image's user is %s:%s", sidecar.User, img.uid, img.gid)
	}
	if !sidecar.ReadOnly || !slices.Equal(sidecar.CapDrop, []string{"ALL"}) || !slices.Contains(sidecar.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("the sidecar: want read_only, cap_drop [ALL] and no-new-privileges; have %v, %v, %v", sidecar.ReadOnly, sidecar.CapDrop, sidecar.SecurityOpt)
	}
	hc := sidecar.HealthCheck
	if hc == nil || !slices.Equal([]string(hc.Test), []string{"CMD", img.entrypoint, "healthcheck"}) {
		t.Fatalf("the sidecar's healthcheck %v: want [CMD %s healthcheck], exec form (the image has no shell)", hc, img.entrypoint)
	}
	imageTimeout := img.healthcheckTimeout
	if hc.Timeout == nil || time.Duration(*hc.Timeout) < imageTimeout {
		t.Errorf("healthcheck timeout %v: want at least the Dockerfile's %s, which outlasts the check's own deadline", hc.Timeout, imageTimeout)
	}
	if sidecar.Deploy == nil || sidecar.Deploy.Resources.Limits == nil || sidecar.Deploy.Resources.Limits.MemoryBytes == 0 {
		t.Error("the sidecar has no memory limit")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// gitignored reports whether a pattern line of a .gitignore matches name
// (simple globs only, which is all deploy/compose/.gitignore has).
func gitignored(gitignore, name string) bool {
	for _, line := range strings.Split(gitignore, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if ok, _ := filepath.Match(line, name); ok {
			return true
		}
	}
	return false
}
