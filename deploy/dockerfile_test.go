package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line  int               // where it starts
	cmd   string            // upper case: FROM, RUN, ...
	flags map[string]string // leading --name=value options
	args  string            // the rest, trimmed
}

// execForm returns the arguments as a JSON array: the exec form, which runs
// without a shell.
func (in instruction) execForm(args string) ([]string, error) {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		return nil, fmt.Errorf("line %d: %s %s is not in exec form (a JSON array): the image has no shell", in.line, in.cmd, args)
	}
	return argv, nil
}

type stage struct {
	from    string // the image, build arguments expanded to their defaults
	rawFrom string // the image as written
	name    string
	instrs  []instruction
}

func (s stage) all(cmd string) []instruction {
	var found []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			found = append(found, in)
		}
	}
	return found
}

type dockerfile struct {
	args   map[string]string // ARGs before the first FROM, with their defaults
	stages []stage
}

// allowedFlags lists, per instruction, the options this parser knows. It
// refuses everything else, so that a typo cannot pass as an option that
// Docker would reject or, worse, ignore.
var allowedFlags = map[string][]string{
	"FROM":        {"platform"},
	"COPY":        {"from", "chown", "chmod", "link"},
	"HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
	"WORKDIR":     nil, "RUN": nil, "ARG": nil, "ENV": nil, "USER": nil,
	"EXPOSE": nil, "ENTRYPOINT": nil, "CMD": nil, "LABEL": nil,
}

func parseDockerfileAt(path string) (*dockerfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDockerfile(string(data))
}

// parseDockerfile parses the subset of the Dockerfile syntax this
// repository uses, strictly: comments, blank lines, backslash continuations
// (comment lines inside them skipped, as Docker does), leading --options.
func parseDockerfile(text string) (*dockerfile, error) {
	var instrs []instruction
	var current strings.Builder
	start := 0
	scanner := bufio.NewScanner(strings.NewReader(text))
	for n := 1; scanner.Scan(); n++ {
		line := scanner.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && current.Len() == 0) {
			continue
		}
		if current.Len() == 0 {
			start = n
		}
		if body, continued := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); continued {
			current.WriteString(body)
			continue
		}
		current.WriteString(line)
		in, err := parseInstruction(start, current.String())
		if err != nil {
			return nil, err
		}
		instrs = append(instrs, in)
		current.Reset()
	}
	if current.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at the end of the file", start)
	}
	df := &dockerfile{args: map[string]string{}}
	for _, in := range instrs {
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			from, err := expandArgs(fields[0], df.args)
			if err != nil {
				return nil, fmt.Errorf("line %d: FROM %s: %v", in.line, fields[0], err)
			}
			st := stage{from: from, rawFrom: fields[0]}
			switch {
			case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
				st.name = fields[2]
			case len(fields) != 1:
				return nil, fmt.Errorf("line %d: FROM %s: want an image and an optional AS name", in.line, in.args)
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			if in.cmd != "ARG" {
				return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			name, value, _ := strings.Cut(in.args, "=")
			df.args[name] = value
			continue
		}
		last := &df.stages[len(df.stages)-1]
		last.instrs = append(last.instrs, in)
	}
	if len(df.stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return df, nil
}

// expandArgs replaces $NAME and ${NAME} with the build arguments' values,
// as Docker does in FROM; an argument declared without a value, or not
// declared, is an error here, since the build must work without
// --build-arg.
func expandArgs(text string, args map[string]string) (string, error) {
	var missing []string
	expanded := os.Expand(text, func(name string) string {
		value, ok := args[name]
		if !ok || value == "" {
			missing = append(missing, name)
		}
		return value
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("build arguments %v have no default", missing)
	}
	return expanded, nil
}

func parseInstruction(line int, text string) (instruction, error) {
	cmd, rest, _ := strings.Cut(strings.TrimSpace(text), " ")
	in := instruction{line: line, cmd: strings.ToUpper(cmd), flags: map[string]string{}}
	known, ok := allowedFlags[in.cmd]
	if !ok {
		return in, fmt.Errorf("line %d: instruction %s is not one this test knows", line, cmd)
	}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		var flag string
		flag, rest, _ = strings.Cut(rest, " ")
		rest = strings.TrimSpace(rest)
		name, value, hasValue := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		if !hasValue || !slices.Contains(known, name) {
			return in, fmt.Errorf("line %d: %s does not take %s", line, in.cmd, flag)
		}
		in.flags[name] = value
	}
	if rest == "" {
		return in, fmt.Errorf("line %d: %s without arguments", line, in.cmd)
	}
	in.args = rest
	return in, nil
}

// envPairs parses ENV's KEY=VALUE form (values bare or double-quoted).
func envPairs(in instruction) (map[string]string, error) {
	pairs := map[string]string{}
	re := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)`)
	for rest := in.args; rest != ""; {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			return nil, fmt.Errorf("line %d: ENV %q: want KEY=VALUE pairs", in.line, in.args)
		}
		value := m[2]
		if strings.HasPrefix(value, `"`) {
			var err error
			if value, err = strconv.Unquote(value); err != nil {
				return nil, fmt.Errorf("line %d: ENV %s: %v", in.line, m[1], err)
			}
		}
		pairs[m[1]] = value
		rest = rest[len(m[0]):]
	}
	return pairs, nil
}

// buildCommand finds the build stage's `go build` and the path it writes.
func buildCommand(df *dockerfile) (run instruction, out string, err error) {
	for _, in := range df.stages[0].all("RUN") {
		if !strings.Contains(in.args, "go build") {
			continue
		}
		fields := strings.Fields(in.args)
		for i, f := range fields {
			if f == "-o" && i+1 < len(fields) {
				return in, fields[i+1], nil
			}
		}
		return in, "", fmt.Errorf("line %d: go build without -o", in.line)
	}
	return instruction{}, "", errors.New("the first stage has no RUN ... go build")
}

// buildLikeDockerfile runs the build stage's go build command as written,
// with sh as RUN does, from the repository root (the stage's COPY . .),
// with the build arguments set as Docker sets them for the host platform.
// Only the output path moves, to dir.
func buildLikeDockerfile(root string, df *dockerfile, dir string) (bin, output string, err error) {
	run, out, err := buildCommand(df)
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "fernet-sidecar")
	script := strings.Replace(run.args, " -o "+out+" ", " -o "+bin+" ", 1)
	if script == run.args {
		return "", "", fmt.Errorf("line %d: cannot redirect -o %s", run.line, out)
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION="+imageVersion, "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH)
	combined, err := cmd.CombinedOutput()
	if err != nil {
		return "", string(combined), fmt.Errorf("sh -c %q: %w", script, err)
	}
	return bin, string(combined), nil
}

// flagDefaults reads a command's flags and their defaults from its -help
// output, as the flag package prints them ("" when a flag shows none).
func flagDefaults(t *testing.T, bin string, args ...string) map[string]string {
	t.Helper()
	out, _ := exec.Command(bin, append(args, "-help")...).CombinedOutput()
	defaults := map[string]string{}
	name := ""
	defaultRE := regexp.MustCompile(`\(default (.*)\)$`)
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			name = strings.Fields(rest)[0]
			defaults[name] = ""
			continue
		}
		if m := defaultRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil && name != "" {
			value := m[1]
			if unquoted, err := strconv.Unquote(value); err == nil {
				value = unquoted
			}
			defaults[name] = value
		}
	}
	if len(defaults) == 0 {
		t.Fatalf("%s %s -help lists no flags:\n%s", bin, strings.Join(args, " "), out)
	}
	return defaults
}

// goDirective returns the go version go.mod requires, as "1.26".
func goDirective(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func versionAtLeast(have, want string) bool {
	parse := func(v string) (int, int) {
		major, minor, _ := strings.Cut(v, ".")
		a, _ := strconv.Atoi(major)
		b, _ := strconv.Atoi(minor)
		return a, b
	}
	ha, hb := parse(have)
	wa, wb := parse(want)
	return ha > wa || (ha == wa && hb >= wb)
}

// TestDockerfile checks the Dockerfile's structure and that what it
// configures matches the binary's flags.
func TestDockerfile(t *testing.T) {
	root := testenv.RepoRoot(t)
	df, err := parseDockerfileAt(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) != 2 {
		t.Fatalf("%d stages, want 2: build, then the final image", len(df.stages))
	}
	build, final := df.stages[0], df.stages[1]

	// Both base images can be swapped with --build-arg (a mirror, or the
	// local stand-ins of container_test.go); the defaults are the real ones.
	for _, base := range []struct{ stage, arg string }{{build.rawFrom, "BUILDER_IMAGE"}, {final.rawFrom, "RUNTIME_IMAGE"}} {
		if base.stage != "${"+base.arg+"}" {
			t.Errorf("FROM %s: want FROM ${%s}, so that a build can swap the base image", base.stage, base.arg)
		}
	}

	// Build stage: Go at least what go.mod requires.
	m := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(build.from)
	if m == nil || build.name == "" {
		t.Fatalf("build stage FROM %s AS %q: want golang:<version> AS <name>", build.from, build.name)
	}
	if want := goDirective(t, root); !versionAtLeast(m[1], want) {
		t.Errorf("build stage uses Go %s; go.mod requires %s", m[1], want)
	}
	run, out, err := buildCommand(df)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(run.args, "CGO_ENABLED=0 ") {
		t.Errorf("line %d: the build must start with CGO_ENABLED=0, for a static binary: %s", run.line, run.args)
	}

	// Final stage: minimal, nothing that needs a shell.
	if final.from != "scratch" && !regexp.MustCompile(`^gcr\.io/distroless/static-debian\d+:nonroot$`).MatchString(final.from) {
		t.Errorf("final FROM %s: want gcr.io/distroless/static-debian<N>:nonroot or scratch", final.from)
	}
	if runs := final.all("RUN"); len(runs) > 0 {
		t.Errorf("line %d: RUN in the final stage, which has no shell", runs[0].line)
	}
	copies := final.all("COPY")
	if len(copies) != 1 || copies[0].flags["from"] != build.name {
		t.Fatalf("final stage: want one COPY --from=%s of the binary, have %v", build.name, copies)
	}
	copied := strings.Fields(copies[0].args)
	if len(copied) != 2 || copied[0] != out {
		t.Fatalf("line %d: COPY %s: want the build's output %s and a destination", copies[0].line, copies[0].args, out)
	}
	binPath := copied[1]

	users := final.all("USER")
	if len(users) != 1 {
		t.Fatalf("final stage has %d USER instructions, want 1", len(users))
	}
	uid, gid, _ := strings.Cut(users[0].args, ":")
	for _, id := range []string{uid, gid} {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("USER %s: want numeric, non-root ids (Kubernetes' runAsNonRoot checks the number)", users[0].args)
			break
		}
	}
	if strings.Contains(final.from, "distroless") && users[0].args != "65532:65532" {
		t.Errorf("USER %s: distroless' nonroot user is 65532:65532", users[0].args)
	}

	entrypoints := final.all("ENTRYPOINT")
	if len(entrypoints) != 1 {
		t.Fatalf("final stage has %d ENTRYPOINTs, want 1", len(entrypoints))
	}
	entrypoint, err := entrypoints[0].execForm(entrypoints[0].args)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(entrypoint, []string{binPath}) {
		t.Errorf("ENTRYPOINT %q: want [%q], the binary the COPY puts there (flags come from FERNET_SIDECAR_* variables)", entrypoint, binPath)
	}
	if cmds := final.all("CMD"); len(cmds) > 0 {
		t.Errorf("line %d: CMD would become arguments to the sidecar", cmds[0].line)
	}

	env := imageEnv(t, final)
	bin := imageBinary(t)
	defaults := flagDefaults(t, bin)
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
	for _, in := range final.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(in.args)...)
	}
	slices.Sort(exposed)
	slices.Sort(wantExposed)
	if !slices.Equal(exposed, wantExposed) {
		t.Errorf("EXPOSE %v; the image configures %v, so want %v", exposed, effective, wantExposed)
	}

	// The health check: exec form, the healthcheck subcommand, and a Docker
	// timeout longer than the subcommand's own deadline.
	checks := final.all("HEALTHCHECK")
	if len(checks) != 1 {
		t.Fatalf("final stage has %d HEALTHCHECKs, want 1", len(checks))
	}
	check := checks[0]
	cmdArgs, ok := strings.CutPrefix(check.args, "CMD ")
	if !ok {
		t.Fatalf("line %d: HEALTHCHECK %s: want CMD [...]", check.line, check.args)
	}
	argv, err := check.execForm(strings.TrimSpace(cmdArgs))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(argv, []string{binPath, "healthcheck"}) {
		t.Errorf("HEALTHCHECK CMD %q: want [%q, \"healthcheck\"]", argv, binPath)
	}
	for _, name := range []string{"interval", "timeout", "start-period"} {
		if _, err := time.ParseDuration(check.flags[name]); err != nil {
			t.Errorf("HEALTHCHECK --%s=%q: %v", name, check.flags[name], err)
		}
	}
	if n, err := strconv.Atoi(check.flags["retries"]); err != nil || n < 1 {
		t.Errorf("HEALTHCHECK --retries=%q: want a positive number", check.flags["retries"])
	}
	dockerTimeout, _ := time.ParseDuration(check.flags["timeout"])
	ownTimeout, err := time.ParseDuration(flagDefaults(t, bin, "healthcheck")["timeout"])
	if err != nil {
		t.Fatalf("healthcheck --timeout default: %v", err)
	}
	if dockerTimeout <= ownTimeout {
		t.Errorf("HEALTHCHECK --timeout=%s: Docker would kill the check before its own %s deadline reports why", dockerTimeout, ownTimeout)
	}
}

// imageEnv returns the final stage's ENV.
func imageEnv(t *testing.T, final stage) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range final.all("ENV") {
		pairs, err := envPairs(in)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range pairs {
			env[k] = v
		}
	}
	return env
}

// TestDockerfileBinary checks the binary that the Dockerfile's build
// command makes: static, stripped, trimmed, stamped with VERSION; and it
// runs the HEALTHCHECK command as written against it, with the image's
// environment (its addresses moved to free loopback ports).
func TestDockerfileBinary(t *testing.T) {
	root := testenv.RepoRoot(t)
	bin := imageBinary(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: the binary is dynamically linked and needs a libc the image lacks", prog.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -ldflags -s did not apply")
	}
	for _, section := range f.Sections {
		if strings.HasPrefix(section.Name, ".debug_") || strings.HasPrefix(section.Name, ".zdebug_") {
			t.Errorf("the binary has DWARF (%s): -ldflags -w did not apply", section.Name)
			break
		}
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// (With -trimpath, Go does not record -ldflags; the sections above
	// show them.)
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings %v: want CGO_ENABLED=0 and -trimpath", settings)
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != imageVersion {
		t.Errorf("--version = %q, %v; want %q (the VERSION build argument)", out, err, imageVersion)
	}

	df, err := parseDockerfileAt(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := df.stages[len(df.stages)-1]
	env := imageEnv(t, final)
	var sidecarEnv []string
	for k, v := range env {
		if strings.HasSuffix(k, "_ADDR") {
			v = "127.0.0.1:0"
		}
		sidecarEnv = append(sidecarEnv, k+"="+v)
	}
	s := sidecartest.Start(t, bin, append(sidecarEnv, "DJANGO_ENCRYPTION_KEY="+newKey(t)))
	if s.HealthAddr == "" {
		t.Fatalf("the image's environment serves no health address:\n%s", s.Log())
	}
	check := final.all("HEALTHCHECK")[0]
	argv, err := check.execForm(strings.TrimSpace(strings.TrimPrefix(check.args, "CMD ")))
	if err != nil {
		t.Fatal(err)
	}
	var checkEnv []string
	for k, v := range env {
		if k == "FERNET_SIDECAR_HEALTH_ADDR" {
			v = s.HealthAddr
		}
		checkEnv = append(checkEnv, k+"="+v)
	}
	runCheck := func() error {
		cmd := exec.Command(bin, argv[1:]...)
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

// TestParseDockerfile checks the parser on what it must refuse.
func TestParseDockerfile(t *testing.T) {
	good := "# c\nFROM a AS b\nRUN x \\\n  # skipped\n  y\nENV A=1 B=\"two words\"\n"
	df, err := parseDockerfile(good)
	if err != nil {
		t.Fatal(err)
	}
	if run := df.stages[0].all("RUN"); len(run) != 1 || run[0].args != "x   y" {
		t.Errorf("continuation: got %+v", run)
	}
	if args, err := parseDockerfile("ARG BASE=img:1\nFROM ${BASE} AS b\nFROM $BASE\n"); err != nil || args.stages[0].from != "img:1" || args.stages[1].from != "img:1" {
		t.Errorf("FROM with build arguments: got %+v, %v", args, err)
	}
	if env, err := envPairs(df.stages[0].all("ENV")[0]); err != nil || env["A"] != "1" || env["B"] != "two words" {
		t.Errorf("ENV: got %v, %v", env, err)
	}
	for _, bad := range []string{
		"FROM a\nHEALTHCHECK --intervall=1s CMD [\"x\"]\n",
		"FROM a\nVOLUME /x\n",
		"RUN x\nFROM a\n",
		"FROM a\nRUN x \\\n",
		"FROM a b\n",
		"ARG IMAGE\nFROM ${IMAGE}\n",
		"FROM ${UNDECLARED}\n",
	} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("parseDockerfile(%q) accepted it", bad)
		}
	}
	if _, err := envPairs(instruction{cmd: "ENV", args: "A 1"}); err == nil {
		t.Error("envPairs accepted the legacy ENV A 1 form")
	}
}
