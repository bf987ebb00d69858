package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

// pushgatewayJob is the job label of fernetctl's pushes.
const pushgatewayJob = "fernetctl"

// pushReporter sends a run's progress to the Pushgateway of --pushgateway,
// beside the run: a Pushgateway that is slow or cannot be reached never
// holds up a batch. A failure is printed once, and again only after a
// push has worked. A nil pushReporter (no --pushgateway) does nothing.
type pushReporter struct {
	gateway *rotation.Pushgateway
	stderr  io.Writer

	mu      sync.Mutex // pushes report from their own goroutine
	failing bool
}

func newPushReporter(cfg config, stderr io.Writer) *pushReporter {
	if cfg.pushgateway == "" {
		return nil
	}
	r := &pushReporter{stderr: stderr}
	r.gateway = rotation.NewPushgateway(cfg.pushgateway, pushgatewayJob, cfg.table, cfg.column, cfg.shard, r.report)
	return r
}

func (r *pushReporter) start() {
	if r != nil {
		r.gateway.Start()
	}
}

func (r *pushReporter) progress(pr rotation.Progress) {
	if r != nil {
		r.gateway.Progress(pr)
	}
}

// finish pushes the outcome, and waits for that push (a few seconds at
// most: rotation.PushTimeout).
func (r *pushReporter) finish(report *rotation.Report, err error) {
	if r != nil {
		r.gateway.Finish(report, err)
	}
}

func (r *pushReporter) report(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && !r.failing {
		fmt.Fprintf(r.stderr, "fernetctl: pushgateway (the run goes on): %v\n", err)
	}
	r.failing = err != nil
}
