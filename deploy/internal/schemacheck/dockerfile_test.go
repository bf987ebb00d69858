package schemacheck

import (
	"fmt"
	"go/version"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"golang.org/x/mod/modfile"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// dockerfile is a Dockerfile as BuildKit parses it.
type dockerfile struct {
	args   map[string]string // ARGs before the first FROM, with their defaults
	stages []instructions.Stage
}

func parseDockerfile(text string) (*dockerfile, error) {
	ast, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	df := &dockerfile{args: map[string]string{}, stages: stages}
	for _, arg := range metaArgs {
		for _, kv := range arg.Args {
			df.args[kv.Key] = kv.ValueString()
		}
	}
	return df, nil
}

// from is the stage's image, build arguments expanded to their defaults as
// Docker does in FROM; an argument declared without a value, or not
// declared, is an error here, since the build must work without
// --build-arg.
func (df *dockerfile) from(st instructions.Stage) (string, error) {
	var missing []string
	expanded := os.Expand(st.BaseName, func(name string) string {
		value, ok := df.args[name]
		if !ok || value == "" {
			missing = append(missing, name)
		}
		return value
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("FROM %s: build arguments %v have no default", st.BaseName, missing)
	}
	return expanded, nil
}

// commands returns the stage's commands of type T.
func commands[T instructions.Command](st instructions.Stage) []T {
	var found []T
	for _, c := range st.Commands {
		if typed, ok := c.(T); ok {
			found = append(found, typed)
		}
	}
	return found
}

// line is where a command starts in the Dockerfile.
func line(c instructions.Command) int { return c.Location()[0].Start.Line }

// buildRun is the build stage's `RUN ... go build` and the path it writes.
func buildRun(build instructions.Stage) (script, out string, err error) {
	for _, run := range commands[*instructions.RunCommand](build) {
		script := strings.Join(run.CmdLine, " ")
		if !strings.Contains(script, "go build") {
			continue
		}
		// deploy/sidecar_test.go builds the binary with this line as
		// written, and finds it with a plain line scan.
		if loc := run.Location(); len(loc) != 1 || loc[0].Start.Line != loc[0].End.Line {
			return "", "", fmt.Errorf("line %d: the go build RUN must stay on one line", line(run))
		}
		fields := strings.Fields(script)
		if i := slices.Index(fields, "-o"); i >= 0 && i+1 < len(fields) {
			return script, fields[i+1], nil
		}
		return "", "", fmt.Errorf("line %d: go build without -o", line(run))
	}
	return "", "", fmt.Errorf("the first stage has no RUN ... go build")
}

// imageEnv returns the stage's ENV, values unquoted as Docker does.
func imageEnv(t *testing.T, st instructions.Stage) map[string]string {
	t.Helper()
	lex := shell.NewLex(parser.DefaultEscapeToken)
	env := map[string]string{}
	for _, in := range commands[*instructions.EnvCommand](st) {
		for _, kv := range in.Env {
			value, _, err := lex.ProcessWord(kv.Value, shell.EnvsFromSlice(nil))
			if err != nil {
				t.Fatalf("line %d: ENV %s: %v", line(in), kv.Key, err)
			}
			env[kv.Key] = value
		}
	}
	return env
}

// readDockerfile parses the repository's Dockerfile, which has two stages:
// the build, then the final image.
func readDockerfile(t *testing.T, root string) (df *dockerfile, build, final instructions.Stage) {
	t.Helper()
	df, err := parseDockerfile(readFile(t, filepath.Join(root, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(df.stages) != 2 {
		t.Fatalf("%d stages, want 2: build, then the final image", len(df.stages))
	}
	return df, df.stages[0], df.stages[1]
}

// goDirective returns the go version go.mod requires, as "go1.26".
func goDirective(t *testing.T, root string) string {
	t.Helper()
	path := filepath.Join(root, "go.mod")
	f, err := modfile.ParseLax(path, []byte(readFile(t, path)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Go == nil {
		t.Fatal("go.mod has no go directive")
	}
	return "go" + f.Go.Version
}

// withoutDigest is image without its @sha256:... part.
func withoutDigest(image string) string {
	name, _, _ := strings.Cut(image, "@")
	return name
}

// TestDockerfile checks the Dockerfile's structure and that what it
// configures matches the binary's flags.
func TestDockerfile(t *testing.T) {
	root := testenv.RepoRoot(t)
	df, build, final := readDockerfile(t, root)

	// Both base images can be swapped with --build-arg (a mirror, or the
	// local stand-ins of deploy/container_test.go); the defaults are the
	// real ones.
	for _, base := range []struct {
		stage instructions.Stage
		arg   string
	}{{build, "BUILDER_IMAGE"}, {final, "RUNTIME_IMAGE"}} {
		if base.stage.BaseName != "${"+base.arg+"}" {
			t.Errorf("FROM %s: want FROM ${%s}, so that a build can swap the base image", base.stage.BaseName, base.arg)
		}
	}
	buildFrom, err := df.from(build)
	if err != nil {
		t.Fatal(err)
	}
	finalFrom, err := df.from(final)
	if err != nil {
		t.Fatal(err)
	}

	// Both defaults are pinned by digest (scratch is no image).
	for _, from := range []string{buildFrom, finalFrom} {
		if from != "scratch" && !digestImage.MatchString(from) {
			t.Errorf("FROM %s: name the default base image by digest (image:tag@sha256:...)", from)
		}
	}
	buildFrom, finalFrom = withoutDigest(buildFrom), withoutDigest(finalFrom)

	// Build stage: Go at least what go.mod requires.
	m := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(buildFrom)
	if m == nil || build.Name == "" {
		t.Fatalf("build stage FROM %s AS %q: want golang:<version> AS <name>", buildFrom, build.Name)
	}
	if want := goDirective(t, root); version.Compare("go"+m[1], version.Lang(want)) < 0 {
		t.Errorf("build stage uses Go %s; go.mod requires %s", m[1], want)
	}
	script, out, err := buildRun(build)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(script, "CGO_ENABLED=0 ") {
		t.Errorf("the build must start with CGO_ENABLED=0, for a static binary: %s", script)
	}

	// Final stage: minimal, nothing that needs a shell.
	if finalFrom != "scratch" && !regexp.MustCompile(`^gcr\.io/distroless/static-debian\d+:nonroot$`).MatchString(finalFrom) {
		t.Errorf("final FROM %s: want gcr.io/distroless/static-debian<N>:nonroot or scratch", finalFrom)
	}
	if runs := commands[*instructions.RunCommand](final); len(runs) > 0 {
		t.Errorf("line %d: RUN in the final stage, which has no shell", line(runs[0]))
	}
	copies := commands[*instructions.CopyCommand](final)
	if len(copies) != 1 || copies[0].From != build.Name {
		t.Fatalf("final stage: want one COPY --from=%s of the binary, have %d COPY", build.Name, len(copies))
	}
	if !slices.Equal(copies[0].SourcePaths, []string{out}) || copies[0].DestPath == "" {
		t.Fatalf("line %d: COPY %v %s: want the build's output %s and a destination", line(copies[0]), copies[0].SourcePaths, copies[0].DestPath, out)
	}
	binPath := copies[0].DestPath

	users := commands[*instructions.UserCommand](final)
	if len(users) != 1 {
		t.Fatalf("final stage has %d USER instructions, want 1", len(users))
	}
	uid, gid, _ := strings.Cut(users[0].User, ":")
	for _, id := range []string{uid, gid} {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("USER %s: want numeric, non-root ids (Kubernetes' runAsNonRoot checks the number)", users[0].User)
			break
		}
	}
	if strings.Contains(finalFrom, "distroless") && users[0].User != "65532:65532" {
		t.Errorf("USER %s: distroless' nonroot user is 65532:65532", users[0].User)
	}

	entrypoints := commands[*instructions.EntrypointCommand](final)
	if len(entrypoints) != 1 {
		t.Fatalf("final stage has %d ENTRYPOINTs, want 1", len(entrypoints))
	}
	if ep := entrypoints[0]; ep.PrependShell || !slices.Equal(ep.CmdLine, []string{binPath}) {
		t.Errorf("line %d: ENTRYPOINT %q (shell form %v): want the exec form [%q], the binary the COPY puts there, no shell (flags come from FERNET_SIDECAR_* variables)",
			line(ep), ep.CmdLine, ep.PrependShell, binPath)
	}
	if cmds := commands[*instructions.CmdCommand](final); len(cmds) > 0 {
		t.Errorf("line %d: CMD would become arguments to the sidecar", line(cmds[0]))
	}

	env := imageEnv(t, final)
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	defaults := sidecartest.FlagDefaults(t, bin)
	for name := range env {
		if flag, ok := strings.CutPrefix(name, "FERNET_SIDECAR_"); ok {
			flag = strings.ToLower(strings.ReplaceAll(flag, "_", "-"))
			if _, known := defaults[flag]; !known {
				t.Errorf("ENV %s names no flag of the sidecar (--%s)", name, flag)
			}
		}
	}

	// EXPOSE lists exactly the ports that the image's configuration binds
	// on other interfaces than loopback; the API must not be one of them.
	effective := map[string]string{}
	wantExposed := []string{}
	for _, flag := range []string{"addr", "health-addr", "metrics-addr"} {
		value, ok := env["FERNET_SIDECAR_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))]
		if !ok {
			value = defaults[flag]
		}
		effective[flag] = value
		if value == "" {
			continue
		}
		host, port, err := net.SplitHostPort(value)
		if err != nil {
			t.Fatalf("--%s %q: %v", flag, value, err)
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			continue
		}
		wantExposed = append(wantExposed, port)
	}
	if host, _, _ := net.SplitHostPort(effective["addr"]); host != "127.0.0.1" {
		t.Errorf("the image serves the API on %q: it must stay on 127.0.0.1", effective["addr"])
	}
	for _, flag := range []string{"health-addr", "metrics-addr"} {
		if host, _, _ := net.SplitHostPort(effective[flag]); effective[flag] == "" || host == "127.0.0.1" {
			t.Errorf("the image serves --%s on %q: probes and Prometheus come from outside the container", flag, effective[flag])
		}
	}
	var exposed []string
	for _, in := range commands[*instructions.ExposeCommand](final) {
		exposed = append(exposed, in.Ports...)
	}
	slices.Sort(exposed)
	slices.Sort(wantExposed)
	if !slices.Equal(exposed, wantExposed) {
		t.Errorf("EXPOSE %v; the image configures %v, so want %v", exposed, effective, wantExposed)
	}

	// The health check: exec form, the healthcheck subcommand, and a Docker
	// timeout longer than the subcommand's own deadline.
	checks := commands[*instructions.HealthCheckCommand](final)
	if len(checks) != 1 {
		t.Fatalf("final stage has %d HEALTHCHECKs, want 1", len(checks))
	}
	health := checks[0].Health
	if !slices.Equal(health.Test, []string{"CMD", binPath, "healthcheck"}) {
		t.Errorf("line %d: HEALTHCHECK %q: want the exec form CMD [%q, \"healthcheck\"]", line(checks[0]), health.Test, binPath)
	}
	for name, d := range map[string]time.Duration{"interval": health.Interval, "timeout": health.Timeout, "start-period": health.StartPeriod} {
		if d <= 0 {
			t.Errorf("HEALTHCHECK --%s: want a duration, so that Docker's default does not decide", name)
		}
	}
	if health.Retries < 1 {
		t.Errorf("HEALTHCHECK --retries=%d: want a positive number", health.Retries)
	}
	ownTimeout, err := time.ParseDuration(sidecartest.FlagDefaults(t, bin, "healthcheck")["timeout"])
	if err != nil {
		t.Fatalf("healthcheck --timeout default: %v", err)
	}
	if health.Timeout <= ownTimeout {
		t.Errorf("HEALTHCHECK --timeout=%s: Docker would kill the check before its own %s deadline reports why", health.Timeout, ownTimeout)
	}
}

// TestDockerfileHealthcheck runs the HEALTHCHECK command as written
// against the sidecar, with the image's environment (its addresses moved
// to free loopback ports): it must pass while the sidecar serves and fail
// once it stops.
func TestDockerfileHealthcheck(t *testing.T) {
	_, _, final := readDockerfile(t, testenv.RepoRoot(t))
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	env := imageEnv(t, final)
	var sidecarEnv []string
	for k, v := range env {
		if strings.HasSuffix(k, "_ADDR") {
			v = "127.0.0.1:0"
		}
		sidecarEnv = append(sidecarEnv, k+"="+v)
	}
	s := sidecartest.Start(t, bin, append(sidecarEnv, "DJANGO_ENCRYPTION_KEY="+testkeys.New(t).Encode()))
	if s.HealthAddr == "" {
		t.Fatalf("the image's environment serves no health address:\n%s", s.Log())
	}
	argv := commands[*instructions.HealthCheckCommand](final)[0].Health.Test
	if len(argv) < 2 || argv[0] != "CMD" {
		t.Fatalf("HEALTHCHECK %q: want the exec form (TestDockerfile says more)", argv)
	}
	var checkEnv []string
	for k, v := range env {
		if k == "FERNET_SIDECAR_HEALTH_ADDR" {
			v = s.HealthAddr
		}
		checkEnv = append(checkEnv, k+"="+v)
	}
	runCheck := func() error {
		cmd := exec.Command(bin, argv[2:]...)
		cmd.Env = checkEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := runCheck(); err != nil {
		t.Fatalf("HEALTHCHECK %q with the image's environment, sidecar serving: %v", argv, err)
	}
	s.Stop(t)
	if err := runCheck(); err == nil {
		t.Fatalf("HEALTHCHECK %q passed with the sidecar stopped", argv)
	}
}

// TestParseDockerfile checks what this file adds to BuildKit's parser: the
// FROM build arguments must have defaults, and the build's RUN must be
// found.
func TestParseDockerfile(t *testing.T) {
	df, err := parseDockerfile("ARG BASE=img:1\nFROM ${BASE} AS b\nRUN CGO_ENABLED=0 go build -o /out/x .\nFROM $BASE\nENV A=1 B=\"two words\"\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range df.stages {
		if from, err := df.from(st); err != nil || from != "img:1" {
			t.Errorf("FROM %s with build arguments: got %q, %v", st.BaseName, from, err)
		}
	}
	if env := imageEnv(t, df.stages[1]); env["A"] != "1" || env["B"] != "two words" {
		t.Errorf("ENV: got %v", env)
	}
	if _, out, err := buildRun(df.stages[0]); err != nil || out != "/out/x" {
		t.Errorf("build RUN: got %q, %v", out, err)
	}
	for _, bad := range []string{
		"ARG IMAGE\nFROM ${IMAGE}\n",
		"FROM ${UNDECLARED}\n",
	} {
		df, err := parseDockerfile(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := df.from(df.stages[0]); err == nil {
			t.Errorf("FROM in %q: no error", bad)
		}
	}
	for _, bad := range []string{
		"FROM a\nRUN go build . \\\n  -o /x\n",
		"FROM a\nRUN go build .\n",
		"FROM a\nRUN true\n",
	} {
		df, err := parseDockerfile(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := buildRun(df.stages[0]); err == nil {
			t.Errorf("build RUN in %q: no error", bad)
		}
	}
	for _, bad := range []string{
		"FROM a\nHEALTHCHECK --intervall=1s CMD [\"x\"]\n",
		"RUN x\nFROM a\n",
		"FROM a b\n",
	} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("parseDockerfile(%q) accepted it", bad)
		}
	}
}
