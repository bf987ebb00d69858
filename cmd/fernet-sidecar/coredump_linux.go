package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// forbidCoreDumps makes the process non-dumpable: no core file holds its
// keys, and other processes of the same user can no longer read its
// memory or environment through /proc/PID (mem, environ) or ptrace.
func forbidCoreDumps() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the process non-dumpable: %w", err)
	}
	return nil
}
