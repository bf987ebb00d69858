package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

// progress shows a running job: on a terminal a bar redrawn in place, at
// most every barEvery; otherwise (a log, CI, kubectl logs) a plain line
// every interval, which reads well when captured.
type progress struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	now      func() time.Time
	start    time.Time
	last     time.Time // last output
	drawn    bool      // a bar is on the current line
}

const barEvery = 100 * time.Millisecond

func newProgress(w io.Writer, tty bool, interval time.Duration, now func() time.Time) *progress {
	t := now()
	return &progress{w: w, tty: tty, interval: interval, now: now, start: t, last: t}
}

// isTerminal reports whether f is a character device, which is what a
// terminal is; pipes and files are not.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(pr rotation.Progress) {
	now := p.now()
	every := p.interval
	if p.tty {
		every = barEvery
	}
	if every <= 0 || now.Sub(p.last) < every {
		return
	}
	p.last = now
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", p.bar(pr, now))
		p.drawn = true
		return
	}
	what := "progress"
	if pr.Verifying {
		what = "checking rows before the checkpoint"
	}
	fmt.Fprintf(p.w, "%s: %s, last primary key %s\n", what, p.stats(pr, now), pr.LastPK)
}

// done ends the bar's line, so that what follows starts on its own.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

const barWidth = 30

func (p *progress) bar(pr rotation.Progress, now time.Time) string {
	filled := 0
	if pr.Total > 0 {
		filled = int(min(pr.Done, pr.Total) * barWidth / pr.Total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "] " + p.stats(pr, now)
}

// stats is "12000/100000 rows (12%), 5300 rows/s, ETA 17s". Done can pass
// Total when the app inserts rows meanwhile; the figures then stop at 100%.
func (p *progress) stats(pr rotation.Progress, now time.Time) string {
	pct := 100.0
	if pr.Total > 0 {
		pct = min(100, float64(pr.Done)*100/float64(pr.Total))
	}
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(pr.Done) / elapsed
	}
	eta := "?"
	if rate > 0 {
		left := max(0, pr.Total-pr.Done)
		eta = time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d rows (%.0f%%), %.0f rows/s, ETA %s", pr.Done, pr.Total, pct, rate, eta)
}
