package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// DebianPython is the interpreter the differential tests hold the Go code
// to: Debian's, with Debian's python3-* packages.
const DebianPython = "/usr/bin/python3"

// Python returns DebianPython once it imports every module in modules; the
// test ends as Missing says, naming the Debian packages, when it does not.
func Python(t testing.TB, modules []string, packages ...string) string {
	t.Helper()
	python := LookPath(t, DebianPython)
	if out, err := exec.CommandContext(t.Context(), python, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput(); err != nil {
		Missing(t, fmt.Sprintf("%s for %s (%v: %s; apt-get install %s)", strings.Join(modules, " and "), python, err, out, strings.Join(packages, " ")))
	}
	return python
}

// RunPython runs python -c script with input on stdin, in UTC (pyotp
// turns Unix times into local datetimes and back), and returns what it
// printed; it fails the test, with the script's stderr, if the script does.
func RunPython(t testing.TB, python, script string, input []byte) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), python, "-c", script)
	cmd.Stdin = bytes.NewReader(input)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.Bytes())
	}
	return out
}
