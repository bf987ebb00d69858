package testenv

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// CheckDocFlags fails t for every flag the docs give command (see
// DocCommandFlags) that usage, the command's flag.PrintDefaults output,
// does not list.
func CheckDocFlags(t testing.TB, command, usage string) {
	t.Helper()
	flags := DocCommandFlags(t, command)
	if len(flags) == 0 {
		t.Fatalf("found no %s command line in the docs", command)
	}
	for name, where := range flags {
		if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(name) + `\b`).MatchString(usage) {
			t.Errorf("%v: %s has no flag --%s", where, command, name)
		}
	}
}

// DocCommandFlags finds the command lines of command (e.g.
// "fernet-sidecar", or "fernetctl reencrypt") in README.md and docs/*.md,
// continuation lines joined, and returns each flag given to it with where
// it appears ("docs/rotation.md:153"), so that a test can check the flags
// the docs tell users to type still exist.
func DocCommandFlags(t testing.TB, command string) map[string][]string {
	t.Helper()
	root := RepoRoot(t)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields(command)
	flags := map[string][]string{}
	for _, path := range append(docs, filepath.Join(root, "README.md")) {
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		lines := strings.Split(strings.ReplaceAll(string(content), "\\\n", " "), "\n")
		for i, line := range lines {
			fields := strings.Fields(strings.ReplaceAll(line, "`", " ` "))
			for j := range fields {
				if !isCommand(fields, j, words) {
					continue
				}
				for _, field := range fields[j+len(words):] {
					if field == "`" || field == "|" || field == ";" || field == "&&" || field == "#" {
						break
					}
					if name, ok := strings.CutPrefix(field, "--"); ok {
						name, _, _ = strings.Cut(name, "=")
						flags[name] = append(flags[name], rel+":"+strconv.Itoa(i+1))
					}
				}
			}
		}
	}
	return flags
}

// isCommand reports whether fields[j:] starts with words, the first one
// possibly as a path (./cmd/fernet-sidecar), and is not a flag's value
// (docker build -t fernet-sidecar, podman run --name fernet-sidecar).
func isCommand(fields []string, j int, words []string) bool {
	if len(fields)-j < len(words) || (j > 0 && strings.HasPrefix(fields[j-1], "-")) {
		return false
	}
	if fields[j] != words[0] && !strings.HasSuffix(fields[j], "/"+words[0]) {
		return false
	}
	for k, word := range words[1:] {
		if fields[j+1+k] != word {
			return false
		}
	}
	return true
}

// TOTPOnlyProfile is the least-privilege --allow-methods list that
// docs/totp.md gives an app that uses the sidecar for TOTP only, so that
// the tests that run it test what the docs tell users to type.
func TOTPOnlyProfile(t testing.TB) string {
	t.Helper()
	content, err := os.ReadFile(filepath.Join(RepoRoot(t), "docs", "totp.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^fernet-sidecar --allow-methods (\S+)$`).FindSubmatch(content)
	if m == nil {
		t.Fatal("docs/totp.md gives no `fernet-sidecar --allow-methods ...` line")
	}
	return string(m[1])
}
