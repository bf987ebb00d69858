package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

// pushgatewayJob is the job label of fernetctl's pushes.
const pushgatewayJob = "fernetctl"

// pushReporter sends a run's progress to the Pushgateway of --pushgateway.
// A Pushgateway that cannot be reached never stops the run: the failure is
// printed once, and again only after a push has worked. A nil pushReporter
// (no --pushgateway) does nothing.
type pushReporter struct {
	gateway *rotation.Pushgateway
	stderr  io.Writer
	failing bool
}

func newPushReporter(cfg config, stderr io.Writer) *pushReporter {
	if cfg.pushgateway == "" {
		return nil
	}
	return &pushReporter{gateway: rotation.NewPushgateway(cfg.pushgateway, pushgatewayJob, cfg.table, cfg.column, cfg.shard), stderr: stderr}
}

func (r *pushReporter) start() {
	if r != nil {
		r.report(r.gateway.Start(context.Background()))
	}
}

func (r *pushReporter) progress(pr rotation.Progress) {
	if r == nil {
		return
	}
	if pushed, err := r.gateway.Progress(context.Background(), pr); pushed {
		r.report(err)
	}
}

// finish pushes the outcome. Its context is not the job's: that one is
// cancelled when the run is aborted, which is an outcome to push too.
func (r *pushReporter) finish(report *rotation.Report, err error) {
	if r != nil {
		r.report(r.gateway.Finish(context.Background(), report, err))
	}
}

func (r *pushReporter) report(err error) {
	if err != nil && !r.failing {
		fmt.Fprintf(r.stderr, "fernetctl: pushgateway (the run goes on): %v\n", err)
	}
	r.failing = err != nil
}
