package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// Mode is what a Job does with the rows it walks.
type Mode int

const (
	// Rotate re-encrypts the column in place.
	Rotate Mode = iota
	// DryRun reports what Rotate would do, and under which key each row
	// is, writing nothing.
	DryRun
	// Check reports under which key each row is, writing nothing.
	Check
)

func (m Mode) String() string {
	switch m {
	case Rotate:
		return "rotate"
	case DryRun:
		return "dry run"
	case Check:
		return "check"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrInterrupted is returned when Job.Interrupt stopped the job between
// batches. Every batch before it committed whole and the checkpoint names
// the last one, so running the job again resumes.
var ErrInterrupted = errors.New("interrupted")

// Defaults for the Job fields left zero.
const (
	DefaultBatchSize   = 1000
	DefaultMaxAttempts = 5
	DefaultMaxIDs      = 1000
)

// Job re-encrypts (or inspects) Column of Table, walking it by PK.
type Job struct {
	DB      *Database
	Crypter Crypter
	Table   string // optionally schema-qualified
	PK      string // the primary-key column: unique, one column, of any orderable type
	Column  string // the token column
	// Where is operator-supplied SQL ANDed into every query, e.g.
	// "confirmed". It is not escaped: it is trusted as the command line is.
	Where     string
	BatchSize int
	Mode      Mode
	// Shard, when its Count is over 1, limits the job to one part of the
	// table, so that several jobs can share it.
	Shard Shard
	// LegacyPlaintext counts rows that hold a bare TOTP secret of this
	// shape instead of a token. Without it such rows are undecryptable
	// (MALFORMED).
	LegacyPlaintext PlaintextShape
	// EncryptPlaintext encrypts those rows in place. It implies
	// LegacyPlaintext, base32 unless set.
	EncryptPlaintext bool
	// Checkpoint, when set, is resumed from and replaced after each
	// committed batch. Only Rotate uses it. A run that resumed checks,
	// once at the end, which key every row before the checkpoint is
	// under (Report.BeforeCheckpoint): a stale checkpoint, from before a
	// database restore say, must not make a run look complete.
	Checkpoint *Checkpoint
	// Restart ignores an existing checkpoint and starts from the first row.
	Restart bool
	// Interrupt, once closed, stops the job before the next batch. The
	// batch in flight finishes: it commits whole or not at all.
	Interrupt <-chan struct{}
	// Progress, when set, is called after each batch.
	Progress func(Progress)
	// MaxAttempts bounds how many times one row is tried within a batch
	// when the app keeps changing it under us.
	MaxAttempts int
	// MaxIDs bounds how many primary keys each list in the Report keeps.
	MaxIDs int
}

// Progress is the state of a running job.
type Progress struct {
	// Done rows of Total were scanned by this run. Total is counted once,
	// at the start, so rows the app inserts meanwhile can push Done past it.
	Done, Total int64
	// Verifying is true while a resumed run checks the rows before its
	// checkpoint; Done and Total then count those.
	Verifying bool
	// Written rows were changed by this run.
	Written int64
	// LastPK is the last row of the last batch.
	LastPK Value
	// Report holds the counts so far. It is the job's own: read it during
	// the call only.
	Report *Report
}

// row is one row as read.
type row struct {
	pk  Value
	val cell
}

// write is a new value for a row, to be made only if the row still holds
// what we read.
type write struct {
	row       row
	token     string
	plaintext bool // a legacy plaintext being encrypted, not a re-encryption
}

// Run walks the table. On success the Report covers every row; on error
// (including ErrInterrupted and a cancelled ctx) it covers the rows done so
// far. Cancelling ctx aborts the batch in flight, which rolls back. Run
// works on a copy of j with the defaults filled in: j is left as it is.
func (j *Job) Run(ctx context.Context) (*Report, error) {
	return j.withDefaults().run(ctx)
}

// withDefaults is a copy of j with the defaults in its zero fields.
func (j *Job) withDefaults() *Job {
	job := *j
	if job.BatchSize <= 0 {
		job.BatchSize = DefaultBatchSize
	}
	if job.MaxAttempts <= 0 {
		job.MaxAttempts = DefaultMaxAttempts
	}
	if job.MaxIDs <= 0 {
		job.MaxIDs = DefaultMaxIDs
	}
	if job.EncryptPlaintext && job.LegacyPlaintext == NoPlaintext {
		job.LegacyPlaintext = Base32
	}
	return &job
}

func (j *Job) run(ctx context.Context) (*Report, error) {
	started := time.Now()
	keys, err := j.Crypter.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("sidecar status: %w", err)
	}
	q, err := j.queries(ctx)
	if err != nil {
		return nil, err
	}
	r := newReport(j, keys)
	defer func() { r.Elapsed = time.Since(started) }()
	scannedBefore, err := j.resume(r)
	if err != nil {
		return r, err
	}
	if err := j.walkRest(ctx, q, r, scannedBefore); err != nil {
		return r, err
	}
	if !r.ResumedAfter.IsZero() {
		if err := j.verifyBefore(ctx, q, r); err != nil {
			return r, err
		}
	}
	// The keys were read once, at the start. Had the sidecar's primary
	// changed since, the rows done before the change would be under a key
	// that is no longer the primary, and the report's counts against the
	// wrong one.
	// The walk is done either way: a sidecar that cannot answer now
	// leaves the verdict open (PrimaryUnconfirmed), not the work undone.
	if now, err := j.Crypter.Keys(ctx); err != nil {
		r.PrimaryUnconfirmed = fmt.Errorf("sidecar status after the last batch: %w", err)
	} else if now.Primary != keys.Primary {
		r.NewPrimary = now.Primary
	}
	r.Complete = true
	if j.checkpoints() {
		if err := j.Checkpoint.Remove(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkpoints says whether the job keeps a checkpoint: only Rotate does.
func (j *Job) checkpoints() bool {
	return j.Mode == Rotate && j.Checkpoint != nil
}

// resume sets r.ResumedAfter from the checkpoint, if there is one to
// resume from, and returns how many rows the earlier runs scanned.
func (j *Job) resume(r *Report) (scannedBefore int64, err error) {
	if !j.checkpoints() || j.Restart {
		return 0, nil
	}
	st, ok, err := j.Checkpoint.Load()
	if err != nil || !ok {
		return 0, err
	}
	if err := j.matches(st, r.Keys.Primary); err != nil {
		return 0, err
	}
	last, err := st.LastPK.value()
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", j.Checkpoint.Path, err)
	}
	r.ResumedAfter = last
	return st.Scanned, nil
}

// walkRest walks the rows after r.ResumedAfter, saving a checkpoint and
// reporting progress after each batch. Stopped or done, the last
// checkpoint is on disk when it returns.
func (j *Job) walkRest(ctx context.Context, q queries, r *Report, scannedBefore int64) error {
	rest := bounds{lower: r.ResumedAfter}
	total, err := j.count(ctx, q, rest)
	if err != nil {
		return err
	}
	saves := &saver{cp: j.Checkpoint}
	err = j.walk(ctx, q, rest, j.Mode, r, func() error {
		if j.checkpoints() {
			if err := saves.save(j.state(r.LastPK, scannedBefore+r.Scanned, r.Keys.Primary)); err != nil {
				return err
			}
		}
		if j.Progress != nil {
			j.Progress(Progress{Done: r.Scanned, Total: total, Written: r.Rewritten + r.PlaintextEncrypted, LastPK: r.LastPK, Report: r})
		}
		return nil
	})
	if serr := saves.wait(); err == nil {
		err = serr
	}
	return err
}

// queries checks the table and the job's columns against the database's
// catalog and builds the job's statements.
func (j *Job) queries(ctx context.Context) (queries, error) {
	q, err := buildQueries(j.DB, j.Table, j.PK, j.Column, j.Where)
	if err != nil {
		return queries{}, err
	}
	cols, err := describe(ctx, j.DB, j.Table)
	if err != nil {
		return queries{}, err
	}
	if q.pkType, err = checkColumns(j.DB, j.Table, cols, j.PK, j.Column); err != nil {
		return queries{}, err
	}
	shard, err := j.Shard.condition(j.DB.Kind, q.pk, q.pkType)
	if err != nil {
		return queries{}, err
	}
	if shard != "" {
		q.filter += shard + " AND "
	}
	return q, nil
}

// state is the checkpoint after a committed batch ending at last, with
// every row up to it under the primary key primary.
func (j *Job) state(last Value, scanned int64, primary string) State {
	st := State{
		Version: stateVersion, Database: j.DB.Fingerprint(), PrimaryKeyID: primary,
		Table: j.Table, PK: j.PK, Column: j.Column, Where: j.Where, EncryptPlaintext: j.EncryptPlaintext,
		LastPK: storeValue(last), Scanned: scanned, Updated: time.Now().UTC(),
	}
	if j.Shard.Count > 1 {
		st.Shard = j.Shard.String()
	}
	if j.EncryptPlaintext {
		st.LegacyPlaintext = string(j.LegacyPlaintext)
	}
	return st
}

// verifyBefore checks, for a run that resumed, which key each row up to
// the checkpoint is under, into r.BeforeCheckpoint. Every one of them
// should be under the primary key (or empty): any other means the
// checkpoint claimed work that is not in the database.
func (j *Job) verifyBefore(ctx context.Context, q queries, r *Report) error {
	r.BeforeCheckpoint = &Report{Mode: Check, Keys: r.Keys, ByKey: map[string]int64{}}
	prefix := bounds{upper: r.ResumedAfter}
	total, err := j.count(ctx, q, prefix)
	if err != nil {
		return err
	}
	v := r.BeforeCheckpoint
	return j.walk(ctx, q, prefix, Check, v, func() error {
		if j.Progress != nil {
			j.Progress(Progress{Done: v.Scanned, Total: total, Verifying: true, LastPK: v.LastPK})
		}
		return nil
	})
}

// batch is one batch as read and planned, with what planning counted.
type batch struct {
	rows   []row
	tally  *Report
	writes []write // Rotate only
	err    error
}

// walk goes through the rows within b in batches. Reading a batch and the
// sidecar's work on it run one batch ahead of the writes, so the sidecar
// and the database work at the same time; the writes, and after each
// batch, run here in order.
func (j *Job) walk(ctx context.Context, q queries, b bounds, mode Mode, r *Report, after func() error) error {
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan batch, 1)
	prepared := make(chan struct{})
	go func() {
		defer close(prepared)
		j.prepareBatches(ctx, q, b, mode, r.Keys, batches)
	}()
	// Returning early stops the reader, and waits for it: nothing of the
	// job touches the database once Run has returned.
	defer func() { cancel(); <-prepared }()
	for {
		select {
		case <-j.Interrupt:
			return ErrInterrupted
		default:
		}
		var bt batch
		var more bool
		select {
		case bt, more = <-batches:
		case <-j.Interrupt:
			return ErrInterrupted
		}
		if !more {
			return ctx.Err()
		}
		if bt.err != nil {
			return bt.err
		}
		if mode == Rotate {
			if err := j.commit(ctx, q, bt.writes, r); err != nil {
				return err
			}
		}
		r.merge(bt.tally, j.MaxIDs)
		r.Scanned += int64(len(bt.rows))
		r.LastPK = bt.rows[len(bt.rows)-1].pk
		if err := after(); err != nil {
			return err
		}
	}
}

// prepareBatches reads the batches within b and plans each (or, for Check
// and DryRun, counts it), until the table ends, an error, or ctx ends.
func (j *Job) prepareBatches(ctx context.Context, q queries, b bounds, mode Mode, keys Keys, out chan<- batch) {
	defer close(out)
	for {
		rows, err := j.read(ctx, q, b)
		if err == nil && len(rows) == 0 {
			return
		}
		bt := batch{rows: rows, tally: &Report{Mode: mode, Keys: keys, ByKey: map[string]int64{}}}
		switch {
		case err != nil:
		case mode == Rotate:
			bt.writes, err = j.plan(ctx, rows, bt.tally)
		default:
			err = j.inspect(ctx, rows, bt.tally, mode)
		}
		bt.err = err
		select {
		case out <- bt:
		case <-ctx.Done():
			return
		}
		if err != nil || len(rows) < j.BatchSize {
			return // an error, or a short batch: the end of the table
		}
		b.lower = rows[len(rows)-1].pk
	}
}

// matches refuses a checkpoint written by another job, or under another
// primary key than primary, the sidecar's now: resuming it would skip rows
// that were never done, or that are under a key that is no longer the
// primary. Walking the whole table again instead would be as safe, but a
// primary key that changed during a rotation is something the operator
// should know of and choose to do (--restart).
func (j *Job) matches(st State, primary string) error {
	mismatch := func(what string) error {
		return fmt.Errorf("checkpoint %s was written for a different %s; use --restart to ignore it, or --state to choose another file", j.Checkpoint.Path, what)
	}
	switch {
	case st.Database != j.DB.Fingerprint():
		return mismatch("database")
	case st.Table != j.Table:
		return mismatch("table")
	case st.PK != j.PK:
		return mismatch("primary-key column")
	case st.Column != j.Column:
		return mismatch("token column")
	case st.Where != j.Where:
		return mismatch("--where")
	case st.EncryptPlaintext != j.EncryptPlaintext:
		return mismatch("--encrypt-plaintext")
	case st.EncryptPlaintext && st.LegacyPlaintext != string(j.LegacyPlaintext):
		return mismatch("--legacy-plaintext")
	case st.Shard != j.state(Value{}, 0, "").Shard:
		return mismatch("--shard")
	case st.PrimaryKeyID != "" && st.PrimaryKeyID != primary:
		return fmt.Errorf("checkpoint %s was written while the sidecar's primary key was %s; it is now %s, so the rows before "+
			"the checkpoint are not under it. Use --restart to walk the whole table under the new primary key",
			j.Checkpoint.Path, st.PrimaryKeyID, primary)
	}
	return nil
}

func (j *Job) count(ctx context.Context, q queries, b bounds) (int64, error) {
	var n int64
	query, args := q.count(b)
	if err := j.DB.SQL.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting rows: %w", err)
	}
	return n, nil
}

// read returns the next batch within b. It reads outside any transaction:
// consistency comes from the conditional write, not from locks held while
// the sidecar works.
func (j *Job) read(ctx context.Context, q queries, b bounds) ([]row, error) {
	query, args := q.read(b, j.BatchSize)
	rs, err := j.DB.SQL.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading a batch: %w", err)
	}
	defer rs.Close()
	types, err := rs.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("reading a batch: %w", err)
	}
	rows := make([]row, 0, j.BatchSize)
	for rs.Next() {
		r, err := scanRow(rs, j.DB, types)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading a batch: %w", err)
	}
	return rows, nil
}

// scanRow reads one (primary key, token) row.
func scanRow(rs *sql.Rows, db *Database, types []*sql.ColumnType) (row, error) {
	var pk, val any
	if err := rs.Scan(&pk, &val); err != nil {
		return row{}, fmt.Errorf("reading a batch: %w", err)
	}
	pk, val = db.textOf(pk, types[0]), db.textOf(val, types[1])
	r := row{}
	var err error
	if r.pk, err = pkValue(pk); err != nil {
		return row{}, err
	}
	if r.val, err = cellValue(val); err != nil {
		return row{}, fmt.Errorf("row %s: %w", r.pk, err)
	}
	return r, nil
}

// commit writes one batch, and then the rows the app changed meanwhile:
// each is re-read and goes round again, in a transaction of its own, up to
// MaxAttempts times in all.
func (j *Job) commit(ctx context.Context, q queries, writes []write, r *Report) error {
	for attempt := 1; len(writes) > 0; attempt++ {
		conflicted, err := j.write(ctx, q, writes)
		if err != nil {
			return err
		}
		lost := make(map[int]bool, len(conflicted))
		for _, i := range conflicted {
			lost[i] = true
		}
		for i, w := range writes {
			switch {
			case lost[i]:
			case w.plaintext:
				r.Plaintext.add(w.row.pk, "encrypted", j.MaxIDs)
				r.PlaintextEncrypted++
			default:
				r.Rewritten++
			}
		}
		r.Conflicts += int64(len(conflicted))
		var again []row
		for _, i := range conflicted {
			fresh, ok, err := j.reread(ctx, q, writes[i].row.pk)
			if err != nil {
				return err
			}
			if !ok {
				r.Vanished++
				continue
			}
			again = append(again, fresh)
		}
		if attempt == j.MaxAttempts {
			for _, row := range again {
				r.Unresolved.add(row.pk, "changed by the app on every attempt", j.MaxIDs)
			}
			return nil
		}
		if writes, err = j.plan(ctx, again, r); err != nil {
			return err
		}
	}
	return nil
}

// plan asks the sidecar about each row and returns the writes to make.
// Every row that needs no write is counted in r here; rows to be written
// are counted once their write commits.
func (j *Job) plan(ctx context.Context, rows []row, r *Report) ([]write, error) {
	tokens, withToken := tokensOf(rows, r, j.MaxIDs)
	if len(tokens) == 0 {
		return nil, nil
	}
	reencrypted, err := askSidecar(ctx, "ReEncrypt", j.Crypter.ReEncrypt, tokens)
	if err != nil {
		return nil, err
	}
	var writes []write
	var plaintexts [][]byte
	var plainRows []row
	for i, s := range reencrypted {
		row := withToken[i]
		switch {
		case s.Err == nil && s.Changed:
			if s.Token == "" {
				// Never blank a row, whatever the sidecar says.
				return nil, fmt.Errorf("sidecar ReEncrypt returned an empty token for row %s", row.pk)
			}
			writes = append(writes, write{row: row, token: s.Token})
		case s.Err == nil:
			r.Current++
		case s.Err.Reason == reasons.Internal:
			return nil, fmt.Errorf("sidecar failed on row %s: %v", row.pk, s.Err)
		case s.Err.Reason == reasons.Malformed && j.LegacyPlaintext.matches(row.val.text):
			if j.EncryptPlaintext {
				plaintexts = append(plaintexts, []byte(row.val.text))
				plainRows = append(plainRows, row)
			} else {
				r.Plaintext.add(row.pk, "not encrypted (use --encrypt-plaintext)", j.MaxIDs)
			}
		default:
			r.Undecryptable.add(row.pk, s.Err.Reason, j.MaxIDs)
		}
	}
	if len(plaintexts) > 0 {
		made, err := askSidecar(ctx, "Encrypt", j.Crypter.Encrypt, plaintexts)
		if err != nil {
			return nil, err
		}
		for i, s := range made {
			if s.Err != nil || s.Token == "" {
				return nil, fmt.Errorf("sidecar Encrypt failed on row %s: %v", plainRows[i].pk, s.Err)
			}
			writes = append(writes, write{row: plainRows[i], token: s.Token, plaintext: true})
		}
	}
	return writes, nil
}

// write makes the writes in one transaction and returns the indexes of
// those whose row no longer held the value we read. Any error rolls the
// whole transaction back: a batch commits whole or not at all.
func (j *Job) write(ctx context.Context, q queries, writes []write) (conflicted []int, err error) {
	if len(writes) == 0 {
		return nil, nil
	}
	tx, err := j.DB.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback() // a no-op once committed
	if conflicted, err = q.writeAll(ctx, tx, writes, j.PK); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing a batch: %w", err)
	}
	return conflicted, nil
}

// reread reads one row again after a conflict; ok is false when it is gone
// (deleted, or no longer matching --where).
func (j *Job) reread(ctx context.Context, q queries, pk Value) (row, bool, error) {
	rs, err := j.DB.SQL.QueryContext(ctx, q.reread(), pk.v)
	if err != nil {
		return row{}, false, fmt.Errorf("re-reading row %s: %w", pk, err)
	}
	defer rs.Close()
	types, err := rs.ColumnTypes()
	if err != nil {
		return row{}, false, fmt.Errorf("re-reading row %s: %w", pk, err)
	}
	if !rs.Next() {
		return row{}, false, rs.Err()
	}
	var val any
	if err := rs.Scan(&val); err != nil {
		return row{}, false, fmt.Errorf("re-reading row %s: %w", pk, err)
	}
	c, err := cellValue(j.DB.textOf(val, types[0]))
	if err != nil {
		return row{}, false, fmt.Errorf("row %s: %w", pk, err)
	}
	return row{pk: pk, val: c}, true, nil
}

// tokensOf counts in r the rows with no token (NULL or empty) and those
// whose text is not UTF-8, and returns the others with their tokens.
func tokensOf(rows []row, r *Report, maxIDs int) (tokens []string, withToken []row) {
	for _, row := range rows {
		if row.val.null || row.val.text == "" {
			r.Empty++
			continue
		}
		token := row.val.token()
		if !utf8.ValidString(token) {
			// Text that is not UTF-8 (SQLite keeps whatever it is given)
			// cannot be sent: a proto string must be UTF-8, and one such
			// item would fail every batch it is in. No app reads it as a
			// token either: Python's sqlite3 cannot decode it.
			r.Undecryptable.add(row.pk, reasons.Malformed, maxIDs)
			continue
		}
		tokens = append(tokens, token)
		withToken = append(withToken, row)
	}
	return tokens, withToken
}

// askSidecar makes one batch call of the Crypter, method, and checks that it
// returned a result for each input, as Crypter promises.
func askSidecar[In, Out any](ctx context.Context, method string, call func(context.Context, []In) ([]Out, error), inputs []In) ([]Out, error) {
	results, err := call(ctx, inputs)
	if err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", method, err)
	}
	if len(results) != len(inputs) {
		return nil, fmt.Errorf("sidecar %s returned %d results for %d inputs", method, len(results), len(inputs))
	}
	return results, nil
}

// inspect counts one batch for Check and DryRun, writing nothing.
func (j *Job) inspect(ctx context.Context, rows []row, r *Report, mode Mode) error {
	tokens, withToken := tokensOf(rows, r, j.MaxIDs)
	if len(tokens) == 0 {
		return nil
	}
	inspected, err := askSidecar(ctx, "Inspect", j.Crypter.Inspect, tokens)
	if err != nil {
		return err
	}
	for i, o := range inspected {
		row := withToken[i]
		switch {
		case o.Err == nil:
			r.ByKey[o.KeyID]++
		case o.Err.Reason == reasons.Internal:
			return fmt.Errorf("sidecar failed on row %s: %v", row.pk, o.Err)
		case o.Err.Reason == reasons.Malformed && j.LegacyPlaintext.matches(row.val.text):
			r.Plaintext.add(row.pk, "plaintext", j.MaxIDs)
		default:
			r.Undecryptable.add(row.pk, o.Err.Reason, j.MaxIDs)
		}
	}
	if mode != DryRun {
		return nil
	}
	// What a run would write: ReEncrypt also rewrites tokens under the
	// primary key that are not canonical (line breaks, '+/' alphabet),
	// which Decrypt alone cannot tell.
	reencrypted, err := askSidecar(ctx, "ReEncrypt", j.Crypter.ReEncrypt, tokens)
	if err != nil {
		return err
	}
	for _, s := range reencrypted {
		switch {
		case s.Err != nil: // counted above
		case s.Changed:
			r.Rewritten++
		default:
			r.Current++
		}
	}
	return nil
}
