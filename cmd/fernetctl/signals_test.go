package main

import (
	"io"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestHandleSignals: the first signal interrupts between batches, the
// second aborts the batch in flight, and stop leaves no goroutine behind.
func TestHandleSignals(t *testing.T) {
	before := runtime.NumGoroutine()
	signals := make(chan os.Signal, 2)
	ctx, interrupt, stop := handleSignals(signals, io.Discard)
	signals <- syscall.SIGINT
	select {
	case <-interrupt:
	case <-time.After(5 * time.Second):
		t.Fatal("the first signal did not interrupt")
	}
	if ctx.Err() != nil {
		t.Fatal("the first signal aborted the batch in flight")
	}
	signals <- syscall.SIGTERM
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not abort the batch in flight")
	}
	stop()
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines after stop, %d before", after, before)
	}

	// With no signal at all, stop still ends the handling, and cancels.
	ctx, _, stop = handleSignals(signals, io.Discard)
	stop()
	if ctx.Err() == nil {
		t.Error("ctx still live after stop")
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines after stop, %d before", after, before)
	}
}
