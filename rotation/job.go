package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
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
	PK      string // the primary-key column: unique, integer or text
	Column  string // the token column
	// Where is operator-supplied SQL ANDed into every query, e.g.
	// "confirmed". It is not escaped: it is trusted as the command line is.
	Where     string
	BatchSize int
	Mode      Mode
	// LegacyPlaintext counts rows that hold a bare base32 TOTP secret
	// instead of a token (see looksLikeSecret). Without it such rows are
	// undecryptable (MALFORMED).
	LegacyPlaintext bool
	// EncryptPlaintext encrypts those rows in place. It implies
	// LegacyPlaintext.
	EncryptPlaintext bool
	// Checkpoint, when set, is resumed from and replaced after each
	// committed batch. Only Rotate uses it.
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
// far. Cancelling ctx aborts the batch in flight, which rolls back.
func (j *Job) Run(ctx context.Context) (*Report, error) {
	started := time.Now()
	if j.BatchSize <= 0 {
		j.BatchSize = DefaultBatchSize
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = DefaultMaxAttempts
	}
	if j.MaxIDs <= 0 {
		j.MaxIDs = DefaultMaxIDs
	}
	if j.EncryptPlaintext {
		j.LegacyPlaintext = true
	}
	q, err := buildQueries(j.DB, j.Table, j.PK, j.Column, j.Where)
	if err != nil {
		return nil, err
	}
	keys, err := j.Crypter.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("sidecar status: %w", err)
	}
	r := newReport(j, keys)
	defer func() { r.Elapsed = time.Since(started) }()

	var last Value
	var before int64 // rows scanned by earlier runs, from the checkpoint
	if j.Mode == Rotate && j.Checkpoint != nil && !j.Restart {
		st, ok, err := j.Checkpoint.Load()
		if err != nil {
			return r, err
		}
		if ok {
			if err := j.matches(st); err != nil {
				return r, err
			}
			if last, err = st.LastPK.value(); err != nil {
				return r, fmt.Errorf("checkpoint %s: %w", j.Checkpoint.Path, err)
			}
			r.ResumedAfter, before = last, st.Scanned
		}
	}

	total, err := j.count(ctx, q, last)
	if err != nil {
		return r, err
	}
	for {
		select {
		case <-j.Interrupt:
			return r, ErrInterrupted
		default:
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		rows, err := j.read(ctx, q, last)
		if err != nil {
			return r, err
		}
		if len(rows) == 0 {
			break
		}
		if j.Mode == Rotate {
			err = j.rotate(ctx, q, rows, r)
		} else {
			err = j.inspect(ctx, rows, r)
		}
		if err != nil {
			return r, err
		}
		last = rows[len(rows)-1].pk
		r.Scanned += int64(len(rows))
		r.LastPK = last
		if j.Mode == Rotate && j.Checkpoint != nil {
			st := State{
				Version: stateVersion, Database: j.DB.Fingerprint(),
				Table: j.Table, PK: j.PK, Column: j.Column, Where: j.Where, EncryptPlaintext: j.EncryptPlaintext,
				LastPK: storeValue(last), Scanned: before + r.Scanned, Updated: time.Now().UTC(),
			}
			if err := j.Checkpoint.Save(st); err != nil {
				return r, fmt.Errorf("saving the checkpoint (the batch committed; a rerun redoes it harmlessly): %w", err)
			}
		}
		if j.Progress != nil {
			j.Progress(Progress{Done: r.Scanned, Total: total, Written: r.Rewritten + r.PlaintextEncrypted, LastPK: last, Report: r})
		}
		if len(rows) < j.BatchSize {
			break // a short batch is the end of the table
		}
	}
	r.Complete = true
	if j.Mode == Rotate && j.Checkpoint != nil {
		if err := j.Checkpoint.Remove(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// matches refuses a checkpoint written by another job: resuming it would
// skip rows that were never done.
func (j *Job) matches(st State) error {
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
	}
	return nil
}

func (j *Job) count(ctx context.Context, q queries, after Value) (int64, error) {
	var n int64
	var err error
	if after.IsZero() {
		err = j.DB.SQL.QueryRowContext(ctx, q.count).Scan(&n)
	} else {
		err = j.DB.SQL.QueryRowContext(ctx, q.after, after.v).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("counting rows: %w", err)
	}
	return n, nil
}

// read returns the next batch after the primary key last (or from the
// start). It reads outside any transaction: consistency comes from the
// optimistic write, not from locks held while the sidecar works.
func (j *Job) read(ctx context.Context, q queries, last Value) ([]row, error) {
	var rs *sql.Rows
	var err error
	if last.IsZero() {
		rs, err = j.DB.SQL.QueryContext(ctx, q.first, j.BatchSize)
	} else {
		rs, err = j.DB.SQL.QueryContext(ctx, q.next, last.v, j.BatchSize)
	}
	if err != nil {
		return nil, fmt.Errorf("reading a batch: %w", err)
	}
	defer rs.Close()
	rows := make([]row, 0, j.BatchSize)
	for rs.Next() {
		var pk, val any
		if err := rs.Scan(&pk, &val); err != nil {
			return nil, fmt.Errorf("reading a batch: %w", err)
		}
		r := row{}
		if r.pk, err = pkValue(pk); err != nil {
			return nil, err
		}
		if r.val, err = cellValue(val); err != nil {
			return nil, fmt.Errorf("row %s: %w", r.pk, err)
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading a batch: %w", err)
	}
	return rows, nil
}

// rotate re-encrypts one batch. The writes commit in one transaction;
// rows the app changed meanwhile are re-read and go round again, in a
// transaction of their own, up to MaxAttempts times.
func (j *Job) rotate(ctx context.Context, q queries, rows []row, r *Report) error {
	pending := rows
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > j.MaxAttempts {
			for _, row := range pending {
				r.Unresolved.add(row.pk, "changed by the app on every attempt", j.MaxIDs)
			}
			return nil
		}
		writes, err := j.plan(ctx, pending, r)
		if err != nil {
			return err
		}
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
		pending = again
	}
	return nil
}

// plan asks the sidecar about each row and returns the writes to make.
// Every row that needs no write is counted in r here; rows to be written
// are counted once their write commits.
func (j *Job) plan(ctx context.Context, rows []row, r *Report) ([]write, error) {
	tokens, withToken := splitEmpty(rows, r)
	if len(tokens) == 0 {
		return nil, nil
	}
	sealed, err := j.Crypter.ReEncrypt(ctx, tokens)
	if err != nil {
		return nil, fmt.Errorf("sidecar ReEncrypt: %w", err)
	}
	if len(sealed) != len(tokens) {
		return nil, fmt.Errorf("sidecar ReEncrypt returned %d results for %d tokens", len(sealed), len(tokens))
	}
	var writes []write
	var plaintexts [][]byte
	var plainRows []row
	for i, s := range sealed {
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
		case s.Err.Reason == ReasonInternal:
			return nil, fmt.Errorf("sidecar failed on row %s: %v", row.pk, s.Err)
		case j.LegacyPlaintext && s.Err.Reason == ReasonMalformed && looksLikeSecret(row.val.text):
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
		made, err := j.Crypter.Encrypt(ctx, plaintexts)
		if err != nil {
			return nil, fmt.Errorf("sidecar Encrypt: %w", err)
		}
		if len(made) != len(plaintexts) {
			return nil, fmt.Errorf("sidecar Encrypt returned %d results for %d plaintexts", len(made), len(plaintexts))
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
	stmt, err := tx.PrepareContext(ctx, q.update)
	if err != nil {
		return nil, fmt.Errorf("preparing the update: %w", err)
	}
	defer stmt.Close()
	for i, w := range writes {
		res, err := stmt.ExecContext(ctx, w.row.val.arg(w.token), w.row.pk.v, w.row.val.arg(w.row.val.text))
		if err != nil {
			return nil, fmt.Errorf("updating row %s (the batch was rolled back): %w", w.row.pk, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("updating row %s (the batch was rolled back): %w", w.row.pk, err)
		}
		switch {
		case n == 0:
			conflicted = append(conflicted, i)
		case n > 1:
			return nil, fmt.Errorf("updating row %s changed %d rows: %s is not unique (the batch was rolled back)", w.row.pk, n, j.PK)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing a batch: %w", err)
	}
	return conflicted, nil
}

// reread reads one row again after a conflict; ok is false when it is gone
// (deleted, or no longer matching --where).
func (j *Job) reread(ctx context.Context, q queries, pk Value) (row, bool, error) {
	var val any
	err := j.DB.SQL.QueryRowContext(ctx, q.reread, pk.v).Scan(&val)
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, false, nil
	}
	if err != nil {
		return row{}, false, fmt.Errorf("re-reading row %s: %w", pk, err)
	}
	c, err := cellValue(val)
	if err != nil {
		return row{}, false, fmt.Errorf("row %s: %w", pk, err)
	}
	return row{pk: pk, val: c}, true, nil
}

// splitEmpty counts the rows with no token (NULL or empty) in r, and
// returns the others with their tokens.
func splitEmpty(rows []row, r *Report) (tokens []string, withToken []row) {
	for _, row := range rows {
		if row.val.null || row.val.text == "" {
			r.Empty++
			continue
		}
		tokens = append(tokens, row.val.text)
		withToken = append(withToken, row)
	}
	return tokens, withToken
}

// inspect counts one batch for Check and DryRun, writing nothing.
func (j *Job) inspect(ctx context.Context, rows []row, r *Report) error {
	tokens, withToken := splitEmpty(rows, r)
	if len(tokens) == 0 {
		return nil
	}
	opened, err := j.Crypter.Decrypt(ctx, tokens)
	if err != nil {
		return fmt.Errorf("sidecar Decrypt: %w", err)
	}
	if len(opened) != len(tokens) {
		return fmt.Errorf("sidecar Decrypt returned %d results for %d tokens", len(opened), len(tokens))
	}
	for i, o := range opened {
		row := withToken[i]
		switch {
		case o.Err == nil:
			r.ByKey[o.KeyID]++
		case o.Err.Reason == ReasonInternal:
			return fmt.Errorf("sidecar failed on row %s: %v", row.pk, o.Err)
		case j.LegacyPlaintext && o.Err.Reason == ReasonMalformed && looksLikeSecret(row.val.text):
			r.Plaintext.add(row.pk, "plaintext", j.MaxIDs)
		default:
			r.Undecryptable.add(row.pk, o.Err.Reason, j.MaxIDs)
		}
	}
	if j.Mode != DryRun {
		return nil
	}
	// What a run would write: ReEncrypt also rewrites tokens under the
	// primary key that are not canonical (line breaks, '+/' alphabet),
	// which Decrypt alone cannot tell.
	sealed, err := j.Crypter.ReEncrypt(ctx, tokens)
	if err != nil {
		return fmt.Errorf("sidecar ReEncrypt: %w", err)
	}
	if len(sealed) != len(tokens) {
		return fmt.Errorf("sidecar ReEncrypt returned %d results for %d tokens", len(sealed), len(tokens))
	}
	for _, s := range sealed {
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
