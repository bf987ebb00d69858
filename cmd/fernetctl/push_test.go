package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

func TestPushReporterWarnsOnceAndGoesOn(t *testing.T) {
	var stderr strings.Builder
	// Nothing listens on port 1: every push fails at once.
	r := newPushReporter(config{pushgateway: "http://127.0.0.1:1", table: "otp_device", column: "key"}, &stderr)
	r.start()
	r.progress(rotation.Progress{Report: &rotation.Report{}})
	r.finish(nil, errors.New("no such table"))
	if n := strings.Count(stderr.String(), "fernetctl: pushgateway (the run goes on):"); n != 1 {
		t.Errorf("%d warnings for three failed pushes, want 1:\n%s", n, stderr.String())
	}
}

func TestNoPushgatewayNoPushes(t *testing.T) {
	var stderr strings.Builder
	r := newPushReporter(config{table: "otp_device", column: "key"}, &stderr)
	if r != nil {
		t.Fatal("a reporter without --pushgateway")
	}
	r.start()
	r.progress(rotation.Progress{})
	r.finish(nil, nil)
	if stderr.Len() != 0 {
		t.Errorf("output without --pushgateway: %q", stderr.String())
	}
}
