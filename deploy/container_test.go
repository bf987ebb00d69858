package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fernet-sidecar/fernet-sidecar/internal/promtest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// The tests in this file build the image from the Dockerfile as written,
// with buildah, and run it with podman: no Docker engine and no registry.
// Only the two base images are swapped, through the Dockerfile's build
// arguments, for stand-ins built here from the host's Debian packages
// (testdata/container/*.Containerfile). Everything is built once per test
// binary (containerImages) and removed by TestMain.

// containerTools are the programs the container tests run, each from its
// Debian package (scripts/test installs them).
var containerTools = []string{"buildah", "podman", "runc", "catatonit", "busybox"}

// builtImages holds the images built for this test binary.
type builtImages struct {
	runID   string // in every name this run gives, so that parallel runs never collide
	env     []string
	sidecar string // the Dockerfile's image
	app     string // a stand-in for the app beside it (app.Containerfile)
	builder string // BUILDER_IMAGE's stand-in, also the app's base
	base    string // RUNTIME_IMAGE's stand-in
	size    int64  // the sidecar image's size in bytes
}

var containerBuild struct {
	once    sync.Once
	images  *builtImages
	missing string // a prerequisite that is not there
	err     error
}

// containerImages returns the images, building them on the first call. The
// test ends as testenv.Missing says when the machine cannot run containers.
func containerImages(t *testing.T) *builtImages {
	t.Helper()
	root := testenv.RepoRoot(t)
	containerBuild.once.Do(func() {
		if os.Geteuid() != 0 {
			containerBuild.missing = "root (buildah and podman run as root, with the system's container storage)"
			return
		}
		for _, tool := range containerTools {
			if _, err := exec.LookPath(tool); err != nil {
				containerBuild.missing = fmt.Sprintf("%s (Debian package %s)", tool, debianPackage(tool))
				return
			}
		}
		if !staticBinary("busybox") {
			containerBuild.missing = "a static busybox, the builder image's shell (Debian package busybox-static, not busybox)"
			return
		}
		var cannotRun cannotRunError
		containerBuild.images, containerBuild.err = buildImages(root)
		if errors.As(containerBuild.err, &cannotRun) {
			containerBuild.missing, containerBuild.err = cannotRun.Error(), nil
		}
	})
	if containerBuild.missing != "" {
		testenv.Missing(t, containerBuild.missing)
	}
	if containerBuild.err != nil {
		t.Fatal(containerBuild.err)
	}
	return containerBuild.images
}

// cannotRunError says that the machine cannot run a container at all.
type cannotRunError struct{ detail string }

func (e cannotRunError) Error() string {
	return "a machine that can run containers (buildah could not run the first RUN of all, in the builder stand-in: " + e.detail + ")"
}

// staticBinary reports whether the program on PATH needs no dynamic
// loader, so that it runs in an image without a libc.
func staticBinary(name string) bool {
	path, err := exec.LookPath(name)
	if err != nil {
		return false
	}
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func debianPackage(tool string) string {
	if tool == "busybox" {
		return "busybox-static"
	}
	return tool
}

// buildImages builds the stand-in bases, then the Dockerfile with them.
func buildImages(root string) (*builtImages, error) {
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	runID := fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(suffix))
	fixtures := filepath.Join(root, "deploy", "testdata", "container")
	images := &builtImages{
		runID:   runID,
		env:     append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(fixtures, "containers.conf")),
		sidecar: "localhost/fernet-sidecar-test:" + runID,
		app:     "localhost/fernet-sidecar-test-app:" + runID,
		builder: "localhost/fernet-sidecar-test-builder:" + runID,
		base:    "localhost/fernet-sidecar-test-runtime:" + runID,
	}
	containerBuild.images = images // so that TestMain removes whatever was built

	goEnv, err := exec.Command("go", "env", "GOROOT", "GOMODCACHE", "GOCACHE").Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	dirs := strings.Fields(string(goEnv))
	if len(dirs) != 3 {
		return nil, fmt.Errorf("go env GOROOT GOMODCACHE GOCACHE printed %q", goEnv)
	}
	goroot, modcache, gocache := dirs[0], dirs[1], dirs[2]
	empty := filepath.Join(buildDir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		return nil, err
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, err
	}
	busybox, err = filepath.EvalSymlinks(busybox)
	if err != nil {
		return nil, err
	}
	// The Dockerfile's `go mod download` runs offline, from the host's
	// module cache: fill it first, as the host's own build does.
	download := exec.Command("go", "mod", "download")
	download.Dir = root
	if out, err := download.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go mod download on the host, for the build's module cache: %v\n%s", err, out)
	}

	steps := [][]string{
		{"bud", "--layers=false", "-f", "builder.Containerfile", "-t", images.builder,
			"--build-context", "busybox=" + filepath.Dir(busybox),
			"--build-context", "goroot=" + goroot,
			fixtures},
		{"bud", "--layers=false", "-f", "runtime.Containerfile", "-t", images.base,
			"--build-context", "cacerts=/etc/ssl/certs",
			"--build-context", "zoneinfo=/usr/share/zoneinfo",
			"--build-context", "empty=" + empty,
			fixtures},
		// The Dockerfile as written. --format docker keeps HEALTHCHECK,
		// which the OCI image format has no field for. --platform sets
		// BUILDPLATFORM, TARGETOS and TARGETARCH, as Docker does by itself.
		{"bud", "--layers=false", "--format", "docker", "-t", images.sidecar,
			"--platform", runtime.GOOS + "/" + runtime.GOARCH,
			"--build-arg", "BUILDER_IMAGE=" + images.builder,
			"--build-arg", "RUNTIME_IMAGE=" + images.base,
			"--build-arg", "VERSION=" + imageVersion,
			"-v", modcache + ":/go/pkg/mod:ro",
			"-v", gocache + ":/root/.cache/go-build",
			root},
		{"bud", "--layers=false", "-f", "app.Containerfile", "-t", images.app,
			"--build-arg", "BASE_IMAGE=" + images.builder,
			"--build-arg", "SIDECAR_IMAGE=" + images.sidecar,
			fixtures},
	}
	for i, args := range steps {
		if out, err := images.run("buildah", args...); err != nil {
			// The builder's RUN is the first container of the run.
			if i == 0 {
				return images, cannotRunError{fmt.Sprintf("%v\n%s", err, out)}
			}
			return images, fmt.Errorf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := images.run("podman", "image", "inspect", "--format", "{{.Size}}", images.sidecar)
	if err != nil {
		return images, fmt.Errorf("podman image inspect: %v\n%s", err, out)
	}
	if images.size, err = strconv.ParseInt(strings.TrimSpace(out), 10, 64); err != nil {
		return images, fmt.Errorf("image size %q: %v", out, err)
	}
	return images, nil
}

// removeContainerImages removes what buildImages built; TestMain calls it.
func removeContainerImages() {
	images := containerBuild.images
	if images == nil {
		return
	}
	// The app's image first: it is built on the others.
	for _, image := range []string{images.app, images.sidecar, images.builder, images.base} {
		images.run("podman", "rmi", "--force", image)
	}
}

// run runs buildah or podman with this run's containers.conf.
func (b *builtImages) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = b.env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// podman runs podman and fails the test if it fails.
func (b *builtImages) podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := b.run("podman", args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// name returns a container or pod name unique to this run and test.
func (b *builtImages) name(t *testing.T, what string) string {
	test := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return fmt.Sprintf("fst-%s-%s-%s", b.runID, test, what)
}

// inspect returns one field of podman inspect's output for a container.
func (b *builtImages) inspect(t *testing.T, container, format string) string {
	t.Helper()
	return b.podman(t, "inspect", "--type", "container", "--format", format, container)
}

// processStatus returns the /proc/<pid>/status fields of a container's main
// process, as the host's kernel reports them.
func (b *builtImages) processStatus(t *testing.T, container string) map[string]string {
	t.Helper()
	pid := b.inspect(t, container, "{{.State.Pid}}")
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if key, value, ok := strings.Cut(line, ":"); ok {
			fields[key] = strings.Join(strings.Fields(value), " ")
		}
	}
	fields["Pid"] = pid
	return fields
}

// mountOptions returns the mount options of a mount point in a container,
// as its main process sees it.
func (b *builtImages) mountOptions(t *testing.T, container, mountPoint string) []string {
	t.Helper()
	pid := b.inspect(t, container, "{{.State.Pid}}")
	data, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 5 && fields[4] == mountPoint {
			return strings.Split(fields[5], ",")
		}
	}
	t.Fatalf("no %s in /proc/%s/mountinfo:\n%s", mountPoint, pid, data)
	return nil
}

// checkHardened checks what the sidecar container's process is allowed, as
// the kernel says: uid and gid 65532, no capabilities, no new privileges,
// a seccomp filter, and a read-only root filesystem.
func (b *builtImages) checkHardened(t *testing.T, container string) {
	t.Helper()
	status := b.processStatus(t, container)
	for field, want := range map[string]string{
		"Uid":        "65532 65532 65532 65532",
		"Gid":        "65532 65532 65532 65532",
		"CapEff":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2",
	} {
		if status[field] != want {
			t.Errorf("%s: process %s has %s %q, want %q", container, status["Pid"], field, status[field], want)
		}
	}
	b.checkReadOnly(t, container, "/")
}

// checkReadOnly checks that a container's mount point is mounted
// read-only.
func (b *builtImages) checkReadOnly(t *testing.T, container, mountPoint string) {
	t.Helper()
	if options := b.mountOptions(t, container, mountPoint); len(options) == 0 || options[0] != "ro" {
		t.Errorf("%s: %s is mounted %v, want read-only", container, mountPoint, options)
	}
}

// logs returns a container's log (the sidecar logs to stderr).
func (b *builtImages) logs(t *testing.T, container string) string {
	t.Helper()
	out, _ := b.run("podman", "logs", container)
	return out
}

// healthServing asks a grpc.health.v1 server whether it serves.
func healthServing(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("status %v", resp.GetStatus())
	}
	return nil
}

// keyInfo is the metric line that says a key is loaded as primary.
func keyInfo(t *testing.T, key string) string {
	return fmt.Sprintf(`fernet_key_info{key_id=%q,role="primary"} 1`, keyID(t, key))
}

// waitForMetric polls a /metrics URL until it has the line, for up to 15 s.
func waitForMetric(t *testing.T, url, line string) error {
	t.Helper()
	return waitFor(15*time.Second, func() error {
		if code, body := promtest.Get(url); code != 200 || !strings.Contains(body, line) {
			return fmt.Errorf("GET %s: %d, no %s", url, code, line)
		}
		return nil
	})
}

// writeKeys writes the key files as the Secret's volume holds them,
// replacing each file whole (a rename), readable by the sidecar's uid.
func writeKeys(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// publishedPort returns the host port that a pod publishes a container
// port on.
func (b *builtImages) publishedPort(t *testing.T, pod string, containerPort int) string {
	t.Helper()
	out := b.podman(t, "pod", "inspect", pod)
	var info struct {
		InfraConfig struct {
			PortBindings map[string][]struct{ HostIp, HostPort string }
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("podman pod inspect: %v\n%s", err, out)
	}
	bindings := info.InfraConfig.PortBindings[fmt.Sprintf("%d/tcp", containerPort)]
	if len(bindings) != 1 || bindings[0].HostIp != "127.0.0.1" {
		t.Fatalf("pod %s publishes %d as %+v, want one binding on 127.0.0.1", pod, containerPort, bindings)
	}
	return "127.0.0.1:" + bindings[0].HostPort
}

// waitFor polls check until it returns nil or the timeout passes.
func waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContainerImage checks the built image's configuration: what the
// Dockerfile says must survive the build.
func TestContainerImage(t *testing.T) {
	images := containerImages(t)
	out := images.podman(t, "image", "inspect", images.sidecar)
	var inspected []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			Env          []string
			ExposedPorts map[string]struct{}
		}
		HealthCheck *struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	image := inspected[0]
	if image.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", image.Config.User)
	}
	if strings.Join(image.Config.Entrypoint, " ") != "/fernet-sidecar" || len(image.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q, cmd %q: want [/fernet-sidecar] and no cmd", image.Config.Entrypoint, image.Config.Cmd)
	}
	if image.HealthCheck == nil || strings.Join(image.HealthCheck.Test, " ") != "CMD /fernet-sidecar healthcheck" {
		t.Errorf("health check %+v, want CMD /fernet-sidecar healthcheck", image.HealthCheck)
	}
	for _, port := range []string{"50052/tcp", "9464/tcp"} {
		if _, ok := image.Config.ExposedPorts[port]; !ok {
			t.Errorf("exposed ports %v lack %s", image.Config.ExposedPorts, port)
		}
	}
	if version := images.podman(t, "run", "--rm", "--no-healthcheck", images.sidecar, "--version"); version != imageVersion {
		t.Errorf("--version in the image = %q, want %q (the VERSION build argument)", version, imageVersion)
	}
	t.Logf("image size: %.1f MB", float64(images.size)/1e6)
}

// TestContainerPod runs the image as Kubernetes runs it beside an app: in a
// pod (a network namespace shared with the app's container), as uid 65532,
// read-only, with no capabilities, and the keys from a directory mounted
// read-only. It checks the contract a user relies on, from where each
// party stands: health and metrics from the host through published ports,
// the API from the app's container only, the image's HEALTHCHECK, a key
// change without a restart, and SIGTERM draining within the grace period.
func TestContainerPod(t *testing.T) {
	images := containerImages(t)
	keys := t.TempDir()
	if err := os.Chmod(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	keyA, keyB := newKey(t), newKey(t)
	writeKeys(t, keys, map[string]string{"primary": keyA + "\n", "old": ""})

	// The API's port is published too, to show that even so the host
	// cannot reach it: the sidecar listens on the pod's loopback only.
	pod := images.name(t, "pod")
	images.podman(t, "pod", "create", "--name", pod,
		"-p", "127.0.0.1::50051", "-p", "127.0.0.1::50052", "-p", "127.0.0.1::9464")
	t.Cleanup(func() { images.run("podman", "pod", "rm", "--force", "--time", "0", pod) })
	healthAddr := images.publishedPort(t, pod, 50052)
	metricsURL := "http://" + images.publishedPort(t, pod, 9464) + "/metrics"
	apiFromHost := images.publishedPort(t, pod, 50051)

	sidecar := images.name(t, "sidecar")
	images.podman(t, "create", "--name", sidecar, "--pod", pod,
		// Nothing writable at all: podman's --read-only would otherwise
		// add tmpfs mounts on /tmp and /run.
		"--read-only", "--read-only-tmpfs=false",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--volume", keys+":/etc/fernet:ro",
		"--env", "DJANGO_ENCRYPTION_KEY_FILE=/etc/fernet/primary",
		"--env", "OLD_DJANGO_ENCRYPTION_KEY_FILE=/etc/fernet/old",
		images.sidecar)
	started := time.Now()
	images.podman(t, "start", sidecar)
	if err := waitFor(15*time.Second, func() error { return healthServing(healthAddr, time.Second) }); err != nil {
		t.Fatalf("health on %s (the container's :50052): %v\n%s", healthAddr, err, images.logs(t, sidecar))
	}
	t.Logf("podman start to SERVING on the published health port: %v", time.Since(started).Round(time.Millisecond))

	images.checkHardened(t, sidecar)
	images.checkReadOnly(t, sidecar, "/etc/fernet")

	// The image's HEALTHCHECK, run by podman as Docker would run it.
	if out, err := images.run("podman", "healthcheck", "run", sidecar); err != nil {
		t.Errorf("podman healthcheck run: %v\n%s", err, out)
	}
	if status := images.inspect(t, sidecar, "{{.State.Health.Status}}"); status != "healthy" {
		t.Errorf("health status %q after the HEALTHCHECK ran, want healthy", status)
	}

	if code, body := promtest.Get(metricsURL); code != 200 || !strings.Contains(body, keyInfo(t, keyA)) {
		t.Errorf("GET %s: %d, want 200 with %s:\n%s", metricsURL, code, keyInfo(t, keyA), body)
	}

	// The app's container, in the same pod, reaches the API on its
	// loopback; the host does not, even through a published port.
	app := images.name(t, "app")
	images.podman(t, "run", "--detach", "--name", app, "--pod", pod, "--read-only", "--user", "10001:10001", images.app)
	if out, err := images.run("podman", "exec", app, "/usr/local/bin/fernet-sidecar", "healthcheck", "--addr", "localhost:50051"); err != nil {
		t.Errorf("the app's container cannot reach the API on localhost:50051: %v\n%s", err, out)
	}
	if err := healthServing(apiFromHost, 2*time.Second); err == nil {
		t.Errorf("the host reached the API through %s: it must listen on the pod's loopback only", apiFromHost)
	}

	// A key change, written into the mounted directory as the kubelet
	// writes a Secret's update: seen without a restart.
	pid := images.inspect(t, sidecar, "{{.State.Pid}}")
	writeKeys(t, keys, map[string]string{"primary": keyB + "\n", "old": keyA + "\n"})
	if err := waitForMetric(t, metricsURL, keyInfo(t, keyB)); err != nil {
		t.Errorf("after the key change: %v\n%s", err, images.logs(t, sidecar))
	}
	if now := images.inspect(t, sidecar, "{{.State.Pid}}"); now != pid {
		t.Errorf("the sidecar's process changed from %s to %s: the key change restarted it", pid, now)
	}

	// SIGTERM, then SIGKILL after the grace period (deployment.yaml's
	// terminationGracePeriodSeconds): it must exit by itself, cleanly.
	const grace = 30
	stopping := time.Now()
	images.podman(t, "stop", "--time", strconv.Itoa(grace), sidecar)
	took := time.Since(stopping)
	if code := images.inspect(t, sidecar, "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("exit code %s after SIGTERM, want 0 (137 is the SIGKILL at the end of the grace period)", code)
	}
	log := images.logs(t, sidecar)
	for _, msg := range []string{`"msg":"shutting down"`, `"msg":"stopped"`} {
		if !strings.Contains(log, msg) {
			t.Errorf("no %s in the log after SIGTERM:\n%s", msg, log)
		}
	}
	t.Logf("podman stop took %v (grace period %ds)", took.Round(time.Millisecond), grace)
}

// manifestEdit is a change the tests make to a copy of a shipped manifest,
// never to the manifest itself. The pattern must match exactly once, so
// that a change to the manifest that the edit no longer fits fails the
// test rather than testing something else. In replace, {{key}} stands for
// a value the test gives.
type manifestEdit struct {
	why, pattern, replace string
}

// applyEdits returns the manifest (read from file) with the edits made.
func applyEdits(t *testing.T, file, manifest string, edits []manifestEdit, values map[string]string) string {
	t.Helper()
	for _, edit := range edits {
		re := regexp.MustCompile(edit.pattern)
		if n := len(re.FindAllStringIndex(manifest, -1)); n != 1 {
			t.Fatalf("%s: %q matches %d times, want once (edit: %s)", file, edit.pattern, n, edit.why)
		}
		replace := edit.replace
		for key, value := range values {
			replace = strings.ReplaceAll(replace, "{{"+key+"}}", value)
		}
		manifest = re.ReplaceAllString(manifest, replace)
	}
	return manifest
}

// kubePlayEdits make deployment.yaml playable by podman 4.3's kube play,
// each for a reason that docs/deployment.md gives.
var kubePlayEdits = []manifestEdit{
	{"the local build instead of the registry's image",
		`(?m)^(\s+image: )\S*fernet-sidecar\S*$`, "${1}{{sidecar}}"},
	{"the app's stand-in",
		`(?m)^(\s+image: )\S*myapp\S*$`, "${1}{{app}}"},
	{"a name unique to this run: podman names pods after the Deployment",
		`(?m)^  name: myapp$`, "  name: {{name}}"},
	// podman 4.3 refuses an init container with probes, and would wait for
	// an init container to exit before starting the app.
	{"the native sidecar as a plain container: the initContainers list joins containers",
		`(?m)^      containers:\n`, ""},
	{"the native sidecar as a plain container: the list's name",
		`(?m)^      initContainers:$`, "      containers:"},
	// podman 4.3 publishes every containerPort on the host's 0.0.0.0 under
	// its own number (Kubernetes publishes none); the pod runs with
	// --network none, so there is nothing to publish on.
	{"no ports lists (the sidecar's)",
		`(?m)^          ports:\n            - name: grpc-health\n              containerPort: \d+\n            - name: fernet-metrics\n              containerPort: \d+\n`, ""},
	{"no ports lists (the app's)",
		`(?m)^          ports:\n            - name: http\n              containerPort: \d+\n`, ""},
	// podman 4.3's secret volumes do not work: without `optional` it
	// segfaults (containers/podman#16636); with it, it ignores stringData,
	// writes data's values still base64-encoded, and ignores defaultMode.
	// So the test writes the Secret's keys as files in a directory itself,
	// as the kubelet does.
	{"the Secret's keys as files in a host directory",
		`(?m)^            secretName: fernet-keys\n            defaultMode: \d+$`, "            path: {{keys}}\n            type: Directory"},
	{"the Secret's keys as files in a host directory: the volume's type",
		`(?m)^(        - name: fernet-keys\n          )secret:$`, "${1}hostPath:"},
}

// TestContainerKubePlay runs deploy/kubernetes/deployment.yaml with podman
// kube play, changed only as kubePlayEdits say, and checks what podman 4.3
// applies of it: the security contexts, the mounts, the memory limit, and
// that each gRPC probe's port answers SERVING inside the pod, as the
// kubelet would ask it; and that the app's container reaches the API and
// the metrics on the pod's loopback.
func TestContainerKubePlay(t *testing.T) {
	images := containerImages(t)
	root := testenv.RepoRoot(t)
	manifest, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	if err := os.Chmod(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	// The Secret of secret-example/, with a real key in place of its
	// placeholder, as the kubelet writes it: one file per key.
	writeKeys(t, keys, map[string]string{"primary": key, "old": ""})

	name := images.name(t, "myapp")
	played := filepath.Join(t.TempDir(), "deployment.yaml")
	if err := os.WriteFile(played, []byte(applyEdits(t, "deployment.yaml", string(manifest), kubePlayEdits, map[string]string{
		"sidecar": images.sidecar, "app": images.app, "name": name, "keys": keys,
	})), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { images.run("podman", "kube", "down", played) })
	images.podman(t, "kube", "play", "--network", "none", played)

	replicas := regexp.MustCompile(`(?m)^  replicas: (\d+)$`).FindStringSubmatch(string(manifest))
	if replicas == nil {
		t.Fatal("deployment.yaml: no spec.replicas")
	}
	n, _ := strconv.Atoi(replicas[1])
	if pods := images.podman(t, "pod", "ps", "--quiet", "--filter", "name=^"+name+"-pod-"); len(strings.Fields(pods)) != n {
		t.Errorf("podman made pods %q, want %d (the Deployment's replicas)", pods, n)
	}

	probePorts := regexp.MustCompile(`(?m)^          (\w+Probe):\n            grpc:\n              port: (\d+)$`).FindAllStringSubmatch(string(manifest), -1)
	if len(probePorts) != 3 {
		t.Fatalf("deployment.yaml: %d gRPC probes on the sidecar, want startup, readiness and liveness", len(probePorts))
	}

	pod := name + "-pod-0"
	sidecar, app := pod+"-fernet-sidecar", pod+"-app"
	err = waitFor(15*time.Second, func() error {
		out, err := images.run("podman", "exec", sidecar, "/fernet-sidecar", "healthcheck", "--addr", "127.0.0.1:"+probePorts[0][2])
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the sidecar does not serve health: %v\n%s", err, images.logs(t, sidecar))
	}
	for _, probe := range probePorts {
		if out, err := images.run("podman", "exec", sidecar, "/fernet-sidecar", "healthcheck", "--addr", "127.0.0.1:"+probe[2]); err != nil {
			t.Errorf("%s (gRPC, port %s): %v\n%s", probe[1], probe[2], err, out)
		}
	}

	images.checkHardened(t, sidecar)
	images.checkReadOnly(t, sidecar, "/etc/fernet")
	if memory := images.inspect(t, sidecar, "{{.HostConfig.Memory}}"); memory != strconv.Itoa(128<<20) {
		t.Errorf("the sidecar's memory limit is %s bytes, want 128Mi as resources.limits says", memory)
	}

	appStatus := images.processStatus(t, app)
	if appStatus["Uid"] != "10001 10001 10001 10001" || appStatus["CapEff"] != "0000000000000000" {
		t.Errorf("the app's process has Uid %q, CapEff %q: want 10001 and none, as its securityContext says", appStatus["Uid"], appStatus["CapEff"])
	}
	images.checkReadOnly(t, app, "/")
	// FERNET_SIDECAR_TARGET is the app's setting for its client.
	if out, err := images.run("podman", "exec", app, "sh", "-c", `exec /usr/local/bin/fernet-sidecar healthcheck --addr "$FERNET_SIDECAR_TARGET"`); err != nil {
		t.Errorf("the app's container cannot reach the API at $FERNET_SIDECAR_TARGET: %v\n%s", err, out)
	}
	metrics, err := images.run("podman", "exec", app, "wget", "-q", "-O", "-", "http://127.0.0.1:9464/metrics")
	if err != nil || !strings.Contains(metrics, keyInfo(t, key)) {
		t.Errorf("metrics from the app's container: %v, want %s:\n%s", err, keyInfo(t, key), metrics)
	}
}

// composeEdits make compose.yaml run the image built here, with its ports
// published on free host ports.
var composeEdits = []manifestEdit{
	{"the image built here: no build section",
		`(?m)^    build:\n      context: \S+\n`, ""},
	{"the image built here",
		`(?m)^(    image: )fernet-sidecar:local$`, "${1}{{sidecar}}"},
	{"the metrics port published on a free host port",
		`(?m)^(      - )"127\.0\.0\.1:9464:9464"`, `${1}"127.0.0.1::9464"`},
	{"the app's port published on a free host port",
		`(?m)^(      - )"127\.0\.0\.1:8000:8000"`, `${1}"127.0.0.1::8000"`},
}

// TestContainerCompose runs compose.yaml's sidecar service with
// podman-compose, Debian's Compose provider for podman, and checks what it
// applies (user, read-only root, no capabilities, the memory limit, the
// secrets as read-only files, the published metrics port) and the key
// change procedure docs/deployment.md gives for Compose: a key file
// written in place is picked up without a restart.
//
// Only that service: podman-compose 1.0.3 passes network_mode
// "service:fernet-sidecar" to podman as it is, which podman refuses, so the
// app's service cannot start; and it runs a CMD health check through
// /bin/sh, which the image does not have, so podman reports it unhealthy.
// docs/deployment.md says so.
func TestContainerCompose(t *testing.T) {
	images := containerImages(t)
	podmanCompose := testenv.LookPath(t, "podman-compose")
	root := testenv.RepoRoot(t)
	original, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	compose := applyEdits(t, "compose.yaml", string(original), composeEdits, map[string]string{"sidecar": images.sidecar})
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	// The key files as compose.yaml's comment says to make them.
	keyA, keyB := newKey(t), newKey(t)
	primary := filepath.Join(dir, "django_encryption_key.txt")
	for path, content := range map[string]string{primary: keyA + "\n", filepath.Join(dir, "old_django_encryption_key.txt"): ""} {
		if err := os.WriteFile(path, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}

	project := strings.ReplaceAll(images.name(t, "compose"), "-", "")
	runCompose := func(args ...string) (string, error) {
		cmd := exec.Command(podmanCompose, append([]string{"--project-name", project, "--file", file}, args...)...)
		cmd.Dir = dir
		cmd.Env = images.env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		runCompose("down", "--timeout", "0")
		images.run("podman", "network", "rm", "--force", project+"_default")
	})
	if out, err := runCompose("up", "--detach", "fernet-sidecar"); err != nil {
		t.Fatalf("podman-compose up: %v\n%s", err, out)
	}
	sidecar := project + "_fernet-sidecar_1"
	published := images.podman(t, "port", sidecar, "9464/tcp")
	if !strings.HasPrefix(published, "127.0.0.1:") {
		t.Fatalf("metrics published on %q, want 127.0.0.1", published)
	}
	metricsURL := "http://" + published + "/metrics"
	waitForKey := func(key string) {
		t.Helper()
		if err := waitForMetric(t, metricsURL, keyInfo(t, key)); err != nil {
			t.Fatalf("%v\n%s", err, images.logs(t, sidecar))
		}
	}
	waitForKey(keyA)

	// The health check's command, in exec form, as Docker Compose runs it.
	if out, err := images.run("podman", "exec", sidecar, "/fernet-sidecar", "healthcheck"); err != nil {
		t.Errorf("/fernet-sidecar healthcheck in the container: %v\n%s", err, out)
	}
	images.checkHardened(t, sidecar)
	images.checkReadOnly(t, sidecar, "/run/secrets/django_encryption_key")
	if memory := images.inspect(t, sidecar, "{{.HostConfig.Memory}}"); memory != strconv.Itoa(128<<20) {
		t.Errorf("the sidecar's memory limit is %s bytes, want 128M as compose.yaml says", memory)
	}

	// docs/deployment.md#compose: write the file in place.
	pid := images.inspect(t, sidecar, "{{.State.Pid}}")
	if err := os.WriteFile(primary, []byte(keyB+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	waitForKey(keyB)
	if now := images.inspect(t, sidecar, "{{.State.Pid}}"); now != pid {
		t.Errorf("the sidecar's process changed from %s to %s: the key change restarted it", pid, now)
	}
}
