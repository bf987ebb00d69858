package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// TestDocsNameRealFlags: every flag the docs give fernetctl reencrypt on a
// command line exists.
func TestDocsNameRealFlags(t *testing.T) {
	var usage strings.Builder
	parseFlags([]string{"-h"}, func(string) string { return "" }, &usage)
	testenv.CheckDocFlags(t, "fernetctl reencrypt", usage.String())
}

// TestRotationStepsFollowTheRunbook: docs/fernetctl.md's rotation steps
// are docs/rotation.md's phases, in its order, so that neither skips the
// phase that makes a multi-replica rotation safe.
func TestRotationStepsFollowTheRunbook(t *testing.T) {
	root := testenv.RepoRoot(t)
	read := func(name string) string {
		content, err := os.ReadFile(filepath.Join(root, "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(content)
	}
	var phases []string
	for _, m := range regexp.MustCompile(`(?m)^\| [1-9]\. ([\w-]+) \|`).FindAllStringSubmatch(read("rotation.md"), -1) {
		phases = append(phases, strings.ToLower(m[1]))
	}
	section := read("fernetctl.md")
	start := strings.Index(section, "## A rotation, step by step")
	if start < 0 {
		t.Fatal(`docs/fernetctl.md has no "A rotation, step by step"`)
	}
	section = section[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	var steps []string
	for _, m := range regexp.MustCompile(`(?m)^\d+\. \*\*([\w-]+)\*\*`).FindAllStringSubmatch(section, -1) {
		steps = append(steps, strings.ToLower(m[1]))
	}
	if len(phases) < 5 || strings.Join(steps, ",") != strings.Join(phases, ",") {
		t.Fatalf("docs/fernetctl.md's steps are %v; docs/rotation.md's phases are %v", steps, phases)
	}
}
