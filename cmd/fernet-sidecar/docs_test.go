package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/keysource"
)

// TestDocsNameRealFlags: every flag the docs give fernet-sidecar on a
// command line exists.
func TestDocsNameRealFlags(t *testing.T) {
	var usage strings.Builder
	parseConfig([]string{"-h"}, env(nil), &usage)
	testenv.CheckDocFlags(t, "fernet-sidecar", usage.String())
}

// TestRotationDocsNameTheKeyVariables: the variables docs/rotation.md
// tells users to set are the ones the sidecar reads by default.
func TestRotationDocsNameTheKeyVariables(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "rotation.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{cfg.keyVar, cfg.oldKeysVar, cfg.keysVar} {
		if !strings.Contains(string(doc), name+keysource.FileSuffix) {
			t.Errorf("docs/rotation.md does not name %s%s", name, keysource.FileSuffix)
		}
	}
}
