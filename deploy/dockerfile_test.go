package deploy

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// buildCommand finds the Dockerfile's `RUN ... go build` line and the path
// it writes. A line scan is enough: deploy/internal/schemacheck's
// TestDockerfile parses the whole file with BuildKit's parser and holds
// this line to one line in the build stage.
func buildCommand(dockerfile string) (script, out string, err error) {
	for _, line := range strings.Split(dockerfile, "\n") {
		script, ok := strings.CutPrefix(line, "RUN ")
		if !ok || !strings.Contains(script, "go build") {
			continue
		}
		fields := strings.Fields(script)
		if i := slices.Index(fields, "-o"); i >= 0 && i+1 < len(fields) {
			return script, fields[i+1], nil
		}
		return "", "", fmt.Errorf("RUN %s: go build without -o", script)
	}
	return "", "", errors.New("the Dockerfile has no RUN ... go build line")
}

// buildLikeDockerfile runs the build stage's go build command as written,
// with sh as RUN does, from the repository root (the stage's COPY . .),
// with the build arguments set as Docker sets them for the host platform.
// Only the output path moves, to dir.
func buildLikeDockerfile(root string, dir string) (bin, output string, err error) {
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return "", "", err
	}
	run, out, err := buildCommand(string(dockerfile))
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "fernet-sidecar")
	script := strings.Replace(run, " -o "+out+" ", " -o "+bin+" ", 1)
	if script == run {
		return "", "", fmt.Errorf("RUN %s: cannot redirect -o %s", run, out)
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

// TestDockerfileBinary checks the binary that the Dockerfile's build
// command makes: static, stripped, trimmed, stamped with VERSION. The
// Dockerfile itself is checked by deploy/internal/schemacheck's
// TestDockerfile (see TestManifests).
func TestDockerfileBinary(t *testing.T) {
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
}
