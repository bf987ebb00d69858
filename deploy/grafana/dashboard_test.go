// The SDK marks dashboard v1 deprecated for dashboardv2, the schema of
// Grafana 12's new dashboard API. v1 is what Grafana's "Import dashboard"
// takes in every version, so the dashboard stays v1.
//
//lint:file-ignore SA1019 dashboard v1 on purpose, see above
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

func TestCommittedJSONIsGenerated(t *testing.T) {
	want, err := dashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what dashboard.go builds: run `go generate` in deploy/grafana and commit the result", file)
	}
}

// TestCommittedJSONDecodesStrictly reads the file as Grafana's schema
// describes it, refusing unknown and missing fields, and checks what every
// panel needs to work once imported.
func TestCommittedJSONDecodesStrictly(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var strict dashboard.Dashboard
	if err := noBuildErrors(strict.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	// The strict decoding checks every panel but, in SDK v0.0.22, keeps
	// none (it takes a panel's empty error list for an error), so the
	// checks below read the file decoded the ordinary way.
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("%s: %v", file, err)
	}

	variables := map[string]bool{}
	for _, v := range d.Templating.List {
		variables[v.Name] = true
	}
	for _, name := range []string{"datasource", "job", "instance"} {
		if !variables[name] {
			t.Errorf("no variable %q", name)
		}
	}

	ids := map[uint32]bool{}
	rows := 0
	row := ""
	for _, p := range d.Panels {
		if p.RowPanel != nil {
			rows++
			row = deref(p.RowPanel.Title)
			if p.RowPanel.Collapsed || len(p.RowPanel.Panels) > 0 {
				t.Errorf("row %q: collapsed rows hide their panels inside them; keep rows open", row)
			}
			continue
		}
		panel := p.Panel
		title := row + " / " + deref(panel.Title)
		if panel.Id == nil || ids[*panel.Id] {
			t.Errorf("%s: missing or repeated id", title)
		} else {
			ids[*panel.Id] = true
		}
		if panel.Datasource == nil || deref(panel.Datasource.Uid) != "${datasource}" {
			t.Errorf("%s: data source is not the $datasource variable", title)
		}
		if g := panel.GridPos; g == nil || g.X+g.W > 24 || g.W == 0 || g.H == 0 {
			t.Errorf("%s: bad grid position %+v", title, g)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("%s: no query", title)
		}
		for _, target := range panel.Targets {
			q, ok := target.(*prometheus.Dataquery)
			if !ok {
				t.Errorf("%s: a query of type %T, want a Prometheus one", title, target)
				continue
			}
			sidecarSeries := !strings.Contains(q.Expr, "fernet_rotation_")
			if sidecarSeries && !strings.Contains(q.Expr, sidecar) {
				t.Errorf("%s: %s does not select the sidecars of $job and $instance", title, q.Expr)
			}
			if strings.Contains(q.Expr, "{S") || strings.Contains(q.Expr, "[R]") {
				t.Errorf("%s: %s has a placeholder left", title, q.Expr)
			}
		}
	}
	if rows != 7 {
		t.Errorf("%d rows, want traffic, failures, keys, latency, resources, refusals and TOTP, rotation runs", rows)
	}
}

// noBuildErrors turns the SDK's empty list of errors, which its strict
// decoding returns on success as a non-nil error, into nil.
func noBuildErrors(err error) error {
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
