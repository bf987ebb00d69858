// Command grafana writes fernet-sidecar.json, the Grafana dashboard of
// fernet-sidecar, from dashboard.go:
//
//	cd deploy/grafana && go generate
//
// It is a module of its own, so that the sidecar's module does not depend
// on the Grafana Foundation SDK. Its test fails when the committed JSON
// differs from what dashboard.go builds; deploy/grafana_test.go runs that
// test, and runs every query of the dashboard against a real Prometheus.
package main

//go:generate go run .

import (
	"fmt"
	"os"
)

// file is where the dashboard is written, in this directory.
const file = "fernet-sidecar.json"

func main() {
	out, err := dashboardJSON()
	if err == nil {
		err = os.WriteFile(file, out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grafana:", err)
		os.Exit(1)
	}
}
