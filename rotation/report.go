package rotation

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is what a job found and did. It holds counts, key ids and
// primary-key values, never a token or a plaintext.
type Report struct {
	Mode             Mode
	Keys             Keys
	EncryptPlaintext bool
	// ResumedAfter is the checkpoint's primary key, when the job resumed.
	ResumedAfter Value
	// LastPK is the last row scanned.
	LastPK Value
	// Complete is true when the walk reached the end of the table.
	Complete bool
	// NewPrimary is the sidecar's primary key id after the walk, when it
	// is not Keys.Primary: the sidecar's keys were reloaded during the
	// run, so rows done before the reload are under a key that is no
	// longer the primary, and only another run can say all are done.
	NewPrimary string
	// PrimaryUnconfirmed says why the sidecar could not be asked for its
	// primary key after the walk, when it could not: the walk is complete,
	// but whether its primary is still Keys.Primary is not known.
	PrimaryUnconfirmed error
	Elapsed            time.Duration

	// Scanned rows, each counted once under exactly one of the others
	// (Conflicts aside, which counts events).
	Scanned int64
	// Empty rows hold NULL or '' and are left alone.
	Empty int64
	// ByKey counts rows by the id of the key that verifies them (Check and
	// DryRun).
	ByKey map[string]int64
	// Current rows were already canonical under the primary key (Rotate and
	// DryRun).
	Current int64
	// Rewritten rows were re-encrypted and written (Rotate), or would be
	// (DryRun).
	Rewritten int64
	// Plaintext rows held a legacy plaintext secret; PlaintextEncrypted of
	// them were encrypted in place.
	Plaintext          Issues
	PlaintextEncrypted int64
	// Undecryptable rows are left as they are; the reason is the sidecar's.
	Undecryptable Issues
	// Conflicts counts writes that found the row changed by the app since
	// it was read; each such row was re-read and tried again.
	Conflicts int64
	// Unresolved rows changed under us on every attempt and were left.
	Unresolved Issues
	// Vanished rows were deleted (or left the --where selection) between
	// our read and our write.
	Vanished int64

	// BeforeCheckpoint, for a run that resumed, counts by key the rows up
	// to the checkpoint, which this run did not walk otherwise (a Check).
	BeforeCheckpoint *Report
}

// Issues is a count of rows with the first of their primary keys.
type Issues struct {
	Count int64
	Rows  []Issue
}

// Issue is one row's primary key and what is wrong with it.
type Issue struct {
	PK     Value
	Reason string
}

func (is *Issues) add(pk Value, reason string, max int) {
	is.Count++
	if len(is.Rows) < max {
		is.Rows = append(is.Rows, Issue{pk, reason})
	}
}

func (is *Issues) merge(o Issues, max int) {
	is.Count += o.Count
	for _, row := range o.Rows {
		if len(is.Rows) < max {
			is.Rows = append(is.Rows, row)
		}
	}
}

// merge adds the counts of o, one batch's, to r.
func (r *Report) merge(o *Report, max int) {
	r.Empty += o.Empty
	r.Current += o.Current
	r.Rewritten += o.Rewritten
	r.PlaintextEncrypted += o.PlaintextEncrypted
	r.Conflicts += o.Conflicts
	r.Vanished += o.Vanished
	for id, n := range o.ByKey {
		r.ByKey[id] += n
	}
	r.Plaintext.merge(o.Plaintext, max)
	r.Undecryptable.merge(o.Undecryptable, max)
	r.Unresolved.merge(o.Unresolved, max)
}

func newReport(j *Job, keys Keys) *Report {
	return &Report{Mode: j.Mode, Keys: keys, EncryptPlaintext: j.EncryptPlaintext, ByKey: map[string]int64{}}
}

// Remaining counts rows that are not, and after this run would not be,
// under the primary key: undecryptable rows, legacy plaintext left as it
// is, rows the app kept changing, for Check rows under an old key, and
// for a resumed run any such row before the checkpoint.
func (r *Report) Remaining() int64 {
	n := r.Undecryptable.Count + r.Unresolved.Count
	if r.BeforeCheckpoint != nil {
		n += r.BeforeCheckpoint.Remaining()
	}
	switch {
	case r.Mode == Rotate:
		n += r.Plaintext.Count - r.PlaintextEncrypted
	case r.Mode == DryRun && r.EncryptPlaintext:
	default:
		n += r.Plaintext.Count
	}
	if r.Mode == Check {
		for id, c := range r.ByKey {
			if id != r.Keys.Primary {
				n += c
			}
		}
	}
	return n
}

// StaleCheckpoint counts the rows before the checkpoint of a resumed run
// that are under an old key: rows the checkpoint said were done.
func (r *Report) StaleCheckpoint() int64 {
	if r.BeforeCheckpoint == nil {
		return 0
	}
	var n int64
	for id, c := range r.BeforeCheckpoint.ByKey {
		if id != r.Keys.Primary {
			n += c
		}
	}
	return n
}

// Rate is rows scanned per second.
func (r *Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Scanned) / r.Elapsed.Seconds()
}

// PrimaryInDoubt reports whether the sidecar's primary key may not be
// the one the run worked against: it changed during the run, or could
// not be read again after it. Then only another run can say all is done.
func (r *Report) PrimaryInDoubt() bool {
	return r.NewPrimary != "" || r.PrimaryUnconfirmed != nil
}

// Write prints the report for people, one fact per line.
func (r *Report) Write(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	verb := map[Mode]string{Rotate: "rotated", DryRun: "dry run", Check: "check"}[r.Mode]
	state := "complete"
	if stale := r.StaleCheckpoint(); stale > 0 {
		state = fmt.Sprintf("complete, but %d rows before the checkpoint are under an old key", stale)
	}
	if r.NewPrimary != "" {
		state = "NOT complete: the sidecar's primary key changed during the run, to " + r.NewPrimary + "; run again"
	}
	if r.PrimaryUnconfirmed != nil {
		state = "walked to the end, but the sidecar's primary key could not be confirmed after it; run --check"
	}
	if !r.Complete {
		state = "INCOMPLETE, stopped after primary key " + r.LastPK.String()
	}
	p("%s: %s", verb, state)
	if !r.ResumedAfter.IsZero() {
		p("resumed after primary key   %s", r.ResumedAfter)
	}
	p("primary key id              %s", r.Keys.Primary)
	if len(r.Keys.DecryptOnly) > 0 {
		p("old key ids                 %s", strings.Join(r.Keys.DecryptOnly, ", "))
	}
	p("rows scanned                %d", r.Scanned)
	p("NULL or empty               %d", r.Empty)
	if r.Mode != Rotate {
		r.writeByKey(w, "")
	}
	switch r.Mode {
	case Rotate:
		p("re-encrypted                %d", r.Rewritten)
		p("already current             %d", r.Current)
	case DryRun:
		p("would re-encrypt            %d", r.Rewritten)
		p("already current             %d", r.Current)
	}
	r.Undecryptable.write(w, "undecryptable               ")
	if r.Plaintext.Count > 0 || r.Mode == Rotate && r.EncryptPlaintext {
		r.Plaintext.write(w, "legacy plaintext            ")
		if r.Mode == Rotate {
			p("plaintext encrypted         %d", r.PlaintextEncrypted)
		}
	}
	if r.Mode == Rotate {
		p("conflicts with app writes   %d (re-read and retried)", r.Conflicts)
		if r.Vanished > 0 {
			p("deleted meanwhile           %d", r.Vanished)
		}
		if r.Unresolved.Count > 0 {
			r.Unresolved.write(w, "left, kept changing         ")
		}
	}
	if v := r.BeforeCheckpoint; v != nil {
		// What this run checked but did not walk: the rows the
		// checkpoint said earlier runs had done.
		p("before the checkpoint       %d rows checked", v.Scanned)
		v.writeByKey(w, "  ")
		if v.Undecryptable.Count > 0 {
			v.Undecryptable.write(w, "  undecryptable             ")
		}
		if v.Plaintext.Count > 0 {
			v.Plaintext.write(w, "  legacy plaintext          ")
		}
	}
	p("elapsed                     %s", r.Elapsed.Round(time.Millisecond))
	p("rate                        %.0f rows/s", r.Rate())
}

// writeByKey prints every loaded key, the primary first and old keys in
// the order they are tried, even at 0: "old key 0" is what says the old
// key can be retired. Then ids the sidecar no longer has (a reload).
func (r *Report) writeByKey(w io.Writer, indent string) {
	ids := append([]string{r.Keys.Primary}, r.Keys.DecryptOnly...)
	var unknown []string
	for id := range r.ByKey {
		if !slices.Contains(ids, id) {
			unknown = append(unknown, id)
		}
	}
	slices.Sort(unknown)
	ids = append(ids, unknown...)
	for _, id := range ids {
		fmt.Fprintf(w, "%sunder %-7s key %s  %d\n", indent, r.Keys.role(id), id, r.ByKey[id])
	}
}

func (is Issues) write(w io.Writer, label string) {
	fmt.Fprintf(w, "%s%d\n", label, is.Count)
	if len(is.Rows) == 0 {
		return
	}
	// Grouped by reason, so a thousand MALFORMED rows read as one line.
	var reasons []string
	byReason := map[string][]string{}
	for _, row := range is.Rows {
		if _, ok := byReason[row.Reason]; !ok {
			reasons = append(reasons, row.Reason)
		}
		byReason[row.Reason] = append(byReason[row.Reason], row.PK.String())
	}
	for _, reason := range reasons {
		fmt.Fprintf(w, "  %s: ids %s\n", reason, strings.Join(byReason[reason], ", "))
	}
	if more := is.Count - int64(len(is.Rows)); more > 0 {
		fmt.Fprintf(w, "  ... and %d more not listed\n", more)
	}
}
