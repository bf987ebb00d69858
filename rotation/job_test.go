package rotation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

const baseTS = 1_600_000_000

// TestJob runs every scenario against SQLite, and real PostgreSQL and
// MariaDB servers.
func TestJob(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, kind, dsn string)
	}{
		{"rotates, skips and reports; rerun writes nothing", testRotateAndRerun},
		{"legacy plaintext counted, kept or encrypted", testLegacyPlaintext},
		{"app writes between read and write are never overwritten", testConflicts},
		{"a row the app keeps changing is left, and reported", testUnresolved},
		{"a failing write rolls the whole batch back; rerun resumes", testFailingWriteRollsBack},
		{"interrupt, checkpoint and resume", testInterruptResume},
		{"text primary keys and --where", testTextKeysAndWhere},
		{"bytes columns stay bytes", testBytesColumn},
		{"bytes that are not UTF-8 are read as Python reads them", testNonUTF8Bytes},
		{"check and dry run count and write nothing", testCheckAndDryRun},
		{"INTERNAL from the sidecar stops the run before any write", testInternalStops},
		{"a --pk that is not unique on its own is refused", testNonUniqueKey},
		{"django-otp's hex keys as legacy plaintext", testTOTPHex},
		{"a stale checkpoint does not make a run complete", testStaleCheckpoint},
		{"a composite primary key is refused", testCompositeKey},
		{"Run leaves the caller's Job as it was", testRunLeavesJob},
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			fresh := freshDatabases(t, kind)
			for _, s := range scenarios {
				t.Run(s.name, func(t *testing.T) { s.run(t, kind, fresh(t)) })
			}
		})
	}
}

// snapshot returns every (id, secret) of an integer-keyed table.
func (a *app) snapshot(table string) map[int64]any {
	a.t.Helper()
	return dbtest.Snapshot(a.t, a.db, "SELECT id, secret FROM "+table)
}

// wantUnchanged fails the test with why unless table still holds before,
// a snapshot of it.
func (a *app) wantUnchanged(table string, before map[int64]any, why string) {
	a.t.Helper()
	if after := a.snapshot(table); !reflect.DeepEqual(after, before) {
		a.t.Error(why)
	}
}

func run(t *testing.T, j *Job) *Report {
	t.Helper()
	r, err := j.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func issueIDs(is Issues) string {
	var s []string
	for _, row := range is.Rows {
		s = append(s, row.PK.String()+":"+row.Reason)
	}
	return strings.Join(s, " ")
}

func testRotateAndRerun(t *testing.T, kind, dsn string) {
	primary, old, stranger := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	const n = 50
	var pks, vals []any
	underPrimary := map[int64]string{}
	for id := int64(1); id <= n; id++ {
		var v any
		switch {
		case id%10 == 0:
			v = nil
		case id == 11:
			v = ""
		case id == 17:
			v = testkeys.Token(t, stranger, "x", baseTS)
		case id == 19:
			v = "not a token"
		case id == 21:
			v = "JBSWY3DPEHPK3PXP" // legacy plaintext, but the option is off
		case id%10 == 3:
			v = testkeys.Token(t, primary, fmt.Sprint("secret-", id), baseTS+uint64(id))
			underPrimary[id] = v.(string)
		default:
			v = testkeys.Token(t, old, fmt.Sprint("secret-", id), baseTS+uint64(id))
		}
		pks, vals = append(pks, id), append(vals, v)
	}
	a.insert("totp", pks, vals)
	before := a.snapshot("totp")

	job := func() *Job {
		return &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 7}
	}
	r := run(t, job())
	wantOld := n - 5 /*NULL*/ - 1 /*''*/ - 3 /*bad*/ - len(underPrimary)
	if r.Scanned != n || r.Empty != 6 || r.Current != int64(len(underPrimary)) || r.Rewritten != int64(wantOld) || !r.Complete {
		t.Errorf("report: scanned %d empty %d current %d rewritten %d complete %v; want %d 6 %d %d true",
			r.Scanned, r.Empty, r.Current, r.Rewritten, r.Complete, n, len(underPrimary), wantOld)
	}
	if got, want := issueIDs(r.Undecryptable), "17:INVALID_SIGNATURE 19:MALFORMED 21:MALFORMED"; got != want {
		t.Errorf("undecryptable = %s, want %s", got, want)
	}
	if r.Remaining() != 3 {
		t.Errorf("Remaining = %d, want 3", r.Remaining())
	}
	after := a.snapshot("totp")
	for id := int64(1); id <= n; id++ {
		switch {
		case id%10 == 0 || id == 11 || id == 17 || id == 19 || id == 21:
			if after[id] != before[id] {
				t.Errorf("row %d changed from %v to %v; NULL, empty and undecryptable rows must be left alone", id, before[id], after[id])
			}
		case underPrimary[id] != "":
			if after[id] != underPrimary[id] {
				t.Errorf("row %d was already canonical under the primary key, yet was rewritten", id)
			}
		default:
			wantUnder(t, primary, after[id], fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
		}
	}

	r = run(t, job())
	if r.Rewritten != 0 || r.Current != int64(wantOld+len(underPrimary)) {
		t.Errorf("rerun: rewritten %d current %d, want 0 and %d", r.Rewritten, r.Current, wantOld+len(underPrimary))
	}
	if again := a.snapshot("totp"); !reflect.DeepEqual(again, after) {
		t.Error("a rerun changed the table")
	}
}

func testLegacyPlaintext(t *testing.T, kind, dsn string) {
	primary, old, stranger := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	secrets := map[int64]string{2: "JBSWY3DPEHPK3PXP", 3: "jbswy3dpehpk3pxpjbswy3dpehpk3pxp", 6: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ======"[:32]}
	a.insert("totp", []any{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6)}, []any{
		testkeys.Token(t, old, "s1", baseTS), secrets[2], secrets[3], "hello world", testkeys.Token(t, stranger, "s5", baseTS), secrets[6],
	})
	job := func(mode Mode, legacy, encrypt bool) *Job {
		j := &Job{DB: openJobDB(t, dsn, mode != Rotate), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret",
			Mode: mode, EncryptPlaintext: encrypt}
		if legacy {
			j.LegacyPlaintext = Base32
		}
		return j
	}
	before := a.snapshot("totp")

	r := run(t, job(DryRun, true, false))
	if r.Plaintext.Count != 3 || r.Undecryptable.Count != 2 || issueIDs(r.Undecryptable) != "4:MALFORMED 5:INVALID_SIGNATURE" {
		t.Errorf("dry run: plaintext %d, undecryptable %s", r.Plaintext.Count, issueIDs(r.Undecryptable))
	}
	if r.Remaining() != 5 {
		t.Errorf("dry run without --encrypt-plaintext: Remaining %d, want 5", r.Remaining())
	}
	if r := run(t, job(DryRun, true, true)); r.Remaining() != 2 {
		t.Errorf("dry run with --encrypt-plaintext: Remaining %d, want 2", r.Remaining())
	}

	r = run(t, job(Rotate, true, false))
	if r.Plaintext.Count != 3 || r.PlaintextEncrypted != 0 || r.Rewritten != 1 || r.Remaining() != 5 {
		t.Errorf("counting only: plaintext %d encrypted %d rewritten %d remaining %d", r.Plaintext.Count, r.PlaintextEncrypted, r.Rewritten, r.Remaining())
	}
	for _, id := range []int64{2, 3, 4, 5, 6} {
		if got := a.value("totp", "id", id); got != before[id] {
			t.Errorf("row %d changed without --encrypt-plaintext", id)
		}
	}

	r = run(t, job(Rotate, false, true)) // --encrypt-plaintext implies counting
	if r.Plaintext.Count != 3 || r.PlaintextEncrypted != 3 || r.Remaining() != 2 {
		t.Errorf("encrypting: plaintext %d encrypted %d remaining %d", r.Plaintext.Count, r.PlaintextEncrypted, r.Remaining())
	}
	for id, secret := range secrets {
		v := a.value("totp", "id", id)
		d, err := fernet.NewKeyring(primary).Decrypt(fmt.Sprint(v))
		if err != nil || string(d.Plaintext) != secret {
			t.Errorf("row %d: %v, want the secret encrypted under the primary key", id, err)
		}
	}
	for _, id := range []int64{4, 5} {
		if got := a.value("totp", "id", id); got != before[id] {
			t.Errorf("row %d is not base32 plaintext but was changed", id)
		}
	}
	if r := run(t, job(Rotate, false, true)); r.PlaintextEncrypted != 0 || r.Rewritten != 0 {
		t.Errorf("rerun encrypted %d and rewrote %d, want 0", r.PlaintextEncrypted, r.Rewritten)
	}
}

// sqliteTableUnder is a new SQLite database whose totp table holds n
// rows under key (oldTable).
func sqliteTableUnder(t *testing.T, key *fernet.Key, n int64) (dsn string, a *app) {
	t.Helper()
	dsn = dbtest.SQLiteFile(t)
	a = openApp(t, SQLite, dsn)
	a.oldTable(key, n)
	return dsn, a
}

// oldTable creates table totp with rows 1 to n, row id holding
// "secret-id" at baseTS+id under key old.
func (a *app) oldTable(old *fernet.Key, n int64) {
	a.t.Helper()
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	var pks, vals []any
	for id := int64(1); id <= n; id++ {
		pks, vals = append(pks, id), append(vals, testkeys.Token(a.t, old, fmt.Sprint("secret-", id), baseTS+uint64(id)))
	}
	a.insert("totp", pks, vals)
}

func testConflicts(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.oldTable(old, 30)
	appPrimary := testkeys.Token(t, primary, "app-3", baseTS+3000)
	appOld := testkeys.Token(t, old, "app-4", baseTS+4000)
	fake := newFake(primary, old)
	fake.beforeReEncrypt = func(call int) {
		if call != 1 {
			return
		}
		// The first batch (rows 1-10) is read; the app now changes four of
		// its rows before the job writes them.
		a.exec("UPDATE totp SET secret = ? WHERE id = 3", appPrimary)
		a.exec("UPDATE totp SET secret = ? WHERE id = 4", appOld)
		a.exec("DELETE FROM totp WHERE id = 5")
		a.exec("UPDATE totp SET secret = NULL WHERE id = 6")
	}
	r := run(t, &Job{DB: openJobDB(t, dsn, false), Crypter: fake, Table: "totp", PK: "id", Column: "secret", BatchSize: 10})
	if r.Conflicts != 4 || r.Vanished != 1 || r.Empty != 1 || r.Current != 1 || r.Rewritten != 27 || r.Remaining() != 0 {
		t.Errorf("conflicts %d vanished %d empty %d current %d rewritten %d remaining %d; want 4 1 1 1 27 0",
			r.Conflicts, r.Vanished, r.Empty, r.Current, r.Rewritten, r.Remaining())
	}
	got := a.snapshot("totp")
	if got[3] != appPrimary {
		t.Error("row 3: the app's new token was overwritten")
	}
	wantUnder(t, primary, got[4], "app-4", baseTS+4000, "row 4 (the app's write under the old key, re-encrypted)")
	if _, ok := got[5]; ok {
		t.Error("row 5, deleted by the app, is back")
	}
	if got[6] != nil {
		t.Errorf("row 6: the app set NULL, now %v", got[6])
	}
	for id := int64(1); id <= 30; id++ {
		if id < 3 || id > 6 {
			wantUnder(t, primary, got[id], fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
		}
	}
}

func testUnresolved(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	a.insert("totp", []any{int64(1), int64(2), int64(3)}, []any{
		testkeys.Token(t, old, "s1", baseTS), testkeys.Token(t, old, "s2", baseTS), testkeys.Token(t, old, "s3", baseTS),
	})
	fake := newFake(primary, old)
	var last string
	fake.beforeReEncrypt = func(call int) {
		// An app (running the old key still) rewrites row 2 every time.
		last = testkeys.Token(t, old, fmt.Sprint("app-", call), baseTS+uint64(call))
		a.exec("UPDATE totp SET secret = ? WHERE id = 2", last)
	}
	r := run(t, &Job{DB: openJobDB(t, dsn, false), Crypter: fake, Table: "totp", PK: "id", Column: "secret", MaxAttempts: 3})
	if r.Conflicts != 3 || r.Unresolved.Count != 1 || issueIDs(r.Unresolved) != "2:changed by the app on every attempt" || r.Rewritten != 2 || r.Remaining() != 1 {
		t.Errorf("conflicts %d unresolved %s rewritten %d remaining %d", r.Conflicts, issueIDs(r.Unresolved), r.Rewritten, r.Remaining())
	}
	if got := a.value("totp", "id", int64(2)); got != last {
		t.Error("row 2 does not hold the app's last write")
	}
}

// addFailingTrigger makes any UPDATE of row id fail inside the database.
func addFailingTrigger(a *app, id int) {
	if a.kind == MySQL {
		a.exec(fmt.Sprintf(`CREATE TRIGGER boom BEFORE UPDATE ON totp FOR EACH ROW
			BEGIN IF NEW.id = %d THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'; END IF; END`, id))
		return
	}
	if a.kind == Postgres {
		a.exec(fmt.Sprintf(`CREATE FUNCTION boom() RETURNS trigger AS $$
			BEGIN IF NEW.id = %d THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`, id))
		a.exec("CREATE TRIGGER boom BEFORE UPDATE ON totp FOR EACH ROW EXECUTE FUNCTION boom()")
		return
	}
	a.exec(fmt.Sprintf("CREATE TRIGGER boom BEFORE UPDATE ON totp WHEN NEW.id = %d BEGIN SELECT RAISE(ABORT, 'boom'); END", id))
}

func testFailingWriteRollsBack(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.oldTable(old, 60)
	before := a.snapshot("totp")
	addFailingTrigger(a, 57)
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	job := func() *Job {
		return &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 20, Checkpoint: cp}
	}
	r, err := job().Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Run = %v, want the failed update's error", err)
	}
	if r.Rewritten != 40 || r.Complete {
		t.Errorf("rewritten %d complete %v, want 40 false", r.Rewritten, r.Complete)
	}
	got := a.snapshot("totp")
	for id := int64(41); id <= 60; id++ {
		if got[id] != before[id] {
			t.Errorf("row %d of the failed batch was written; the batch must roll back whole", id)
		}
	}
	st, ok, err := cp.Load()
	if last, _ := st.LastPK.value(); !ok || err != nil || last.String() != "40" {
		t.Fatalf("checkpoint after the failure = %+v %v %v, want last 40", st, ok, err)
	}

	if kind == Postgres {
		a.exec("DROP TRIGGER boom ON totp")
	} else {
		a.exec("DROP TRIGGER boom")
	}
	r = run(t, job())
	if r.ResumedAfter.String() != "40" || r.Scanned != 20 || r.Rewritten != 20 {
		t.Errorf("resume: after %s scanned %d rewritten %d, want 40 20 20", r.ResumedAfter, r.Scanned, r.Rewritten)
	}
	got = a.snapshot("totp")
	for id := int64(1); id <= 60; id++ {
		wantUnder(t, primary, got[id], fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
	}
}

func testInterruptResume(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.oldTable(old, 100)
	a.exec("ALTER TABLE totp ADD COLUMN other TEXT")
	before := a.snapshot("totp")
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	interrupt := make(chan struct{})
	job := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 10,
		Checkpoint: cp, Interrupt: interrupt}
	var seen []Progress
	job.Progress = func(p Progress) {
		seen = append(seen, p)
		if p.Done == 30 {
			close(interrupt) // as Ctrl-C during the third batch would
		}
	}
	r, err := job.Run(context.Background())
	if !errors.Is(err, ErrInterrupted) || r.Scanned != 30 || r.Complete {
		t.Fatalf("Run = %v, scanned %d complete %v; want ErrInterrupted after 30 rows", err, r.Scanned, r.Complete)
	}
	if len(seen) != 3 || seen[0].Total != 100 || seen[2].Written != 30 || seen[2].LastPK.String() != "30" {
		t.Errorf("progress = %+v", seen)
	}
	got := a.snapshot("totp")
	for id := int64(1); id <= 100; id++ {
		if id <= 30 {
			wantUnder(t, primary, got[id], fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
		} else if got[id] != before[id] {
			t.Errorf("row %d written after the interrupt", id)
		}
	}

	// Another job's checkpoint is refused, not resumed.
	for what, other := range map[string]*Job{
		"--where":             {Where: "id > 0"},
		"--encrypt-plaintext": {EncryptPlaintext: true},
		"token column":        {Column: "other"},
	} {
		other.DB, other.Crypter, other.Table, other.PK, other.Checkpoint = job.DB, job.Crypter, "totp", "id", cp
		if other.Column == "" {
			other.Column = "secret"
		}
		if _, err := other.Run(context.Background()); err == nil || !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), "--restart") {
			t.Errorf("a checkpoint for another %s was not refused: %v", what, err)
		}
	}

	resumed := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 10, Checkpoint: cp}
	var total, verifyTotal int64
	resumed.Progress = func(p Progress) {
		if p.Verifying {
			verifyTotal = p.Total
		} else {
			total = p.Total
		}
	}
	r = run(t, resumed)
	if r.ResumedAfter.String() != "30" || r.Scanned != 70 || r.Rewritten != 70 || total != 70 || !r.Complete {
		t.Errorf("resume: after %s scanned %d rewritten %d total %d", r.ResumedAfter, r.Scanned, r.Rewritten, total)
	}
	// The resumed run checked the 30 rows before its checkpoint.
	if v := r.BeforeCheckpoint; v == nil || v.Scanned != 30 || v.ByKey[primary.ID()] != 30 || verifyTotal != 30 || r.StaleCheckpoint() != 0 || r.Remaining() != 0 {
		t.Errorf("resume: before the checkpoint %+v (progress total %d), want 30 rows under the primary key", v, verifyTotal)
	}
	if _, err := os.Stat(cp.Path); !os.IsNotExist(err) {
		t.Errorf("checkpoint left after a complete run: %v", err)
	}
	got = a.snapshot("totp")
	for id := int64(1); id <= 100; id++ {
		wantUnder(t, primary, got[id], fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
	}
	// --restart walks everything again, harmlessly.
	again := &Job{DB: job.DB, Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", Checkpoint: cp, Restart: true}
	if r := run(t, again); r.Scanned != 100 || r.Rewritten != 0 {
		t.Errorf("restart: scanned %d rewritten %d, want 100 0", r.Scanned, r.Rewritten)
	}
}

func testTextKeysAndWhere(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE users (username VARCHAR(64) PRIMARY KEY, secret TEXT)")
	names := []any{"alice", "Bob", "carol", "dave", "émile", "frank", "Zed", "zoë", "admin-1", "admin-2", "user 10", "user 9"}
	var vals []any
	for i, name := range names {
		vals = append(vals, testkeys.Token(t, old, fmt.Sprint("s-", name), baseTS+uint64(i)))
	}
	a.insert("users", names, vals)
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	interrupt := make(chan struct{})
	job := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "users", PK: "username", Column: "secret",
		Where: "username NOT LIKE 'admin-%' -- operators' SQL, comments included", BatchSize: 3, Checkpoint: cp, Interrupt: interrupt}
	job.Progress = func(Progress) { close(interrupt); job.Progress = nil }
	if _, err := job.Run(context.Background()); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted", err)
	}
	st, _, _ := cp.Load()
	if st.LastPK.Text == nil {
		t.Fatalf("checkpoint of a text key = %+v", st.LastPK)
	}
	job.Interrupt = nil
	r := run(t, job)
	if r.Scanned != 7 || r.Rewritten != 7 || r.ResumedAfter.String() != fmt.Sprintf("%q", *st.LastPK.Text) {
		t.Errorf("resume over text keys: after %s scanned %d rewritten %d, want 7 and 7", r.ResumedAfter, r.Scanned, r.Rewritten)
	}
	for i, name := range names {
		got := a.value("users", "username", name)
		if strings.HasPrefix(name.(string), "admin-") {
			if got != vals[i] {
				t.Errorf("%s is outside --where but was changed", name)
			}
			continue
		}
		wantUnder(t, primary, got, fmt.Sprint("s-", name), baseTS+uint64(i), fmt.Sprint(name))
	}
}

func testBytesColumn(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	blob := map[string]string{SQLite: "BLOB", Postgres: "BYTEA", MySQL: "BLOB"}[kind]
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret " + blob + ")")
	a.insert("totp", []any{int64(1), int64(2)}, []any{[]byte(testkeys.Token(t, old, "s1", baseTS)), []byte(testkeys.Token(t, primary, "s2", baseTS))})
	r := run(t, &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret"})
	if r.Rewritten != 1 || r.Current != 1 {
		t.Errorf("rewritten %d current %d, want 1 1", r.Rewritten, r.Current)
	}
	wantUnder(t, primary, a.value("totp", "id", int64(1)), "s1", baseTS, "row 1")
	if kind == SQLite {
		var typ string
		if err := a.db.QueryRow("SELECT typeof(secret) FROM totp WHERE id = 1").Scan(&typ); err != nil || typ != "blob" {
			t.Errorf("row 1 is now %s (%v), want still a blob", typ, err)
		}
	}
}

// testNonUTF8Bytes: Python's Fernet skips the bytes of a bytes token
// outside the base64 alphabet, non-ASCII included, so a blob with stray
// bytes before a token is that token. One such value must not fail every
// batch it is in: it rotates, or is MALFORMED and left as it is.
func testNonUTF8Bytes(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	blob := map[string]string{SQLite: "BLOB", Postgres: "BYTEA", MySQL: "BLOB"}[kind]
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret " + blob + ")")
	underPrimary := "\xff\xfe" + testkeys.Token(t, primary, "s2", baseTS)
	a.insert("totp", []any{int64(1), int64(2), int64(3), int64(4)}, []any{
		[]byte("\xff\xfe" + testkeys.Token(t, old, "s1", baseTS)), []byte(underPrimary), []byte("\xff\xfe"), []byte("\xe9garbage"),
	})
	wantMalformed := "3:MALFORMED 4:MALFORMED"
	if kind == SQLite {
		// SQLite text that is not UTF-8: no app reads it as a token.
		a.exec("INSERT INTO totp VALUES (5, CAST(X'fffe' || ? AS TEXT))", testkeys.Token(t, old, "s5", baseTS))
		wantMalformed = "5:MALFORMED " + wantMalformed // counted before the sidecar is asked
	}
	before := a.snapshot("totp")
	for _, mode := range []Mode{Check, DryRun} {
		r := run(t, &Job{DB: openJobDB(t, dsn, true), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", Mode: mode})
		if r.ByKey[old.ID()] != 1 || r.ByKey[primary.ID()] != 1 || issueIDs(r.Undecryptable) != wantMalformed {
			t.Errorf("%s: under old %d, under primary %d, undecryptable %s; want 1, 1, %s", mode, r.ByKey[old.ID()], r.ByKey[primary.ID()], issueIDs(r.Undecryptable), wantMalformed)
		}
	}
	r := run(t, &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret"})
	if r.Rewritten != 1 || r.Current != 1 || issueIDs(r.Undecryptable) != wantMalformed {
		t.Errorf("rewritten %d current %d undecryptable %s, want 1 1 %s", r.Rewritten, r.Current, issueIDs(r.Undecryptable), wantMalformed)
	}
	wantUnder(t, primary, a.value("totp", "id", int64(1)), "s1", baseTS, "row 1")
	after := a.snapshot("totp")
	for id := int64(2); id <= int64(len(before)); id++ {
		if after[id] != before[id] {
			t.Errorf("row %d changed; a current or malformed row is left as it is", id)
		}
	}
}

func testCheckAndDryRun(t *testing.T, kind, dsn string) {
	primary, old, old2, stranger := testkeys.New(t), testkeys.New(t), testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	var pks, vals []any
	add := func(v any) { pks, vals = append(pks, int64(len(pks)+1)), append(vals, v) }
	for i := range 5 {
		add(testkeys.Token(t, old, "o", baseTS+uint64(i)))
	}
	for i := range 3 {
		add(testkeys.Token(t, primary, "p", baseTS+uint64(i)))
	}
	// Under the primary key but not canonical: Python accepts the line
	// break, and a run rewrites it canonically.
	tok := testkeys.Token(t, primary, "p", baseTS)
	add(tok[:40] + "\n" + tok[40:])
	add(testkeys.Token(t, old2, "o2", baseTS))
	add(testkeys.Token(t, old2, "o2", baseTS))
	add(nil)
	add(testkeys.Token(t, stranger, "x", baseTS)) // id 13
	a.insert("totp", pks, vals)
	before := a.snapshot("totp")
	crypter := newFake(primary, old, old2)

	r := run(t, &Job{DB: openJobDB(t, dsn, true), Crypter: crypter, Table: "totp", PK: "id", Column: "secret", Mode: Check, BatchSize: 4})
	wantByKey := map[string]int64{primary.ID(): 4, old.ID(): 5, old2.ID(): 2}
	if !reflect.DeepEqual(r.ByKey, wantByKey) || r.Empty != 1 || issueIDs(r.Undecryptable) != "13:INVALID_SIGNATURE" || r.Remaining() != 8 {
		t.Errorf("check: by key %v empty %d undecryptable %s remaining %d", r.ByKey, r.Empty, issueIDs(r.Undecryptable), r.Remaining())
	}
	var out strings.Builder
	r.Write(&out)
	for _, want := range []string{"under primary key " + primary.ID() + "  4", "under old     key " + old.ID() + "  5", "INVALID_SIGNATURE: ids 13"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check report lacks %q:\n%s", want, out.String())
		}
	}

	r = run(t, &Job{DB: openJobDB(t, dsn, true), Crypter: crypter, Table: "totp", PK: "id", Column: "secret", Mode: DryRun})
	if !reflect.DeepEqual(r.ByKey, wantByKey) || r.Rewritten != 8 || r.Current != 3 || r.Remaining() != 1 {
		t.Errorf("dry run: by key %v would rewrite %d current %d remaining %d", r.ByKey, r.Rewritten, r.Current, r.Remaining())
	}
	a.wantUnchanged("totp", before, "check or dry run changed the table")

	// The read-only connection --check and --dry-run use refuses writes
	// even if the job tried to make some.
	_, err := (&Job{DB: openJobDB(t, dsn, true), Crypter: crypter, Table: "totp", PK: "id", Column: "secret"}).Run(context.Background())
	if err == nil {
		t.Error("a rotation over a read-only connection succeeded")
	}
	a.wantUnchanged("totp", before, "a write went through the read-only connection")
}

func testInternalStops(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	var pks, vals []any
	for id := int64(1); id <= 10; id++ {
		pks, vals = append(pks, id), append(vals, testkeys.Token(t, old, "s", baseTS))
	}
	a.insert("totp", pks, vals)
	before := a.snapshot("totp")
	fake := newFake(primary, old)
	fake.internal = vals[4].(string)
	_, err := (&Job{DB: openJobDB(t, dsn, false), Crypter: fake, Table: "totp", PK: "id", Column: "secret"}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "row 5") {
		t.Errorf("Run = %v, want a sidecar failure naming row 5", err)
	}
	a.wantUnchanged("totp", before, "rows were written in a batch the sidecar failed on")
}

// testNonUniqueKey: keyset paging by a column that is not unique skips
// the rows that share a value across a batch boundary, so such a --pk is
// refused before anything is read; a column with a unique index of its
// own is walked like a primary key.
func testNonUniqueKey(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, grp BIGINT, uid VARCHAR(40), org BIGINT, part BIGINT, noidx BIGINT, secret TEXT)")
	a.exec("CREATE UNIQUE INDEX totp_uid ON totp (uid)")
	a.exec("CREATE UNIQUE INDEX totp_org_grp ON totp (org, grp)")
	if kind != MySQL { // MySQL has no partial indexes
		a.exec("CREATE UNIQUE INDEX totp_part ON totp (part) WHERE part > 0")
	}
	for id := int64(1); id <= 10; id++ {
		a.exec("INSERT INTO totp VALUES (?, ?, ?, ?, ?, ?, ?)", id, (id+1)/2, fmt.Sprint("u", id), id, id, id, testkeys.Token(t, old, "s", baseTS))
	}
	before := a.snapshot("totp")
	for _, pk := range []string{"grp", "org", "part", "noidx"} {
		_, err := (&Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: pk, Column: "secret", BatchSize: 3}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("column %q of table totp is not unique on its own", pk)) {
			t.Errorf("--pk %s: %v, want it refused as not unique", pk, err)
		}
	}
	a.wantUnchanged("totp", before, "rows were written by a run whose --pk is not unique")
	r := run(t, &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "uid", Column: "secret", BatchSize: 3})
	if r.Scanned != 10 || r.Rewritten != 10 {
		t.Errorf("--pk uid (a unique index): scanned %d, rewritten %d; want 10 10", r.Scanned, r.Rewritten)
	}
}

func testTOTPHex(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	hexKey := "3132333435363738393031323334353637383930" // django-otp's default: 20 bytes, 40 hex digits
	a.insert("totp", []any{int64(1), int64(2), int64(3), int64(4)}, []any{
		hexKey, strings.ToUpper(hexKey[:32]), "JBSWY3DPEHPK3PXP", testkeys.Token(t, old, "s4", baseTS),
	})
	r := run(t, &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret",
		LegacyPlaintext: TOTPHex, EncryptPlaintext: true})
	if r.PlaintextEncrypted != 2 || r.Rewritten != 1 || issueIDs(r.Undecryptable) != "3:MALFORMED" {
		t.Errorf("encrypted %d rewritten %d undecryptable %s; want 2 1 3:MALFORMED (base32 is not hex)", r.PlaintextEncrypted, r.Rewritten, issueIDs(r.Undecryptable))
	}
	for id, want := range map[int64]string{1: hexKey, 2: strings.ToUpper(hexKey[:32])} {
		d, err := fernet.NewKeyring(primary).Decrypt(fmt.Sprint(a.value("totp", "id", id)))
		if err != nil || string(d.Plaintext) != want {
			t.Errorf("row %d: %v, want the hex key encrypted as it was", id, err)
		}
	}
}

// testStaleCheckpoint: the database is restored from a backup taken
// before the rotation, and a checkpoint from after it is still there. The
// resumed run must not say all is done.
func testStaleCheckpoint(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.oldTable(old, 40)
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	job := func() *Job {
		return &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 10, Checkpoint: cp}
	}
	j := job()
	if err := cp.Save(j.state(IntValue(25), 25, primary.ID())); err != nil {
		t.Fatal(err)
	}
	r := run(t, j)
	var out strings.Builder
	r.Write(&out)
	if r.ResumedAfter.String() != "25" || r.Scanned != 15 || r.StaleCheckpoint() != 25 || r.Remaining() != 25 ||
		!strings.HasPrefix(out.String(), "rotated: complete, but 25 rows before the checkpoint are under an old key\n") ||
		!strings.Contains(out.String(), "before the checkpoint       25 rows checked\n  under primary key "+primary.ID()+"  0\n  under old     key "+old.ID()+"  25\n") {
		t.Errorf("resumed after %s, scanned %d, stale %d, remaining %d; want 25 15 25 25:\n%s", r.ResumedAfter, r.Scanned, r.StaleCheckpoint(), r.Remaining(), out.String())
	}
	// The checkpoint is gone, so the next run walks everything.
	r = run(t, job())
	if !r.ResumedAfter.IsZero() || r.Rewritten != 25 || r.Remaining() != 0 {
		t.Errorf("rerun: resumed after %s, rewritten %d, remaining %d; want a full walk that fixes 25", r.ResumedAfter, r.Rewritten, r.Remaining())
	}
}

func testCompositeKey(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE member (org_id BIGINT, user_id BIGINT, secret TEXT, PRIMARY KEY (org_id, user_id))")
	for _, pk := range []string{"org_id", "user_id"} {
		_, err := (&Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "member", PK: pk, Column: "secret"}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "composite primary key (org_id, user_id)") {
			t.Errorf("--pk %s: %v, want the composite key refused", pk, err)
		}
	}
	for pk, col := range map[string]string{"nope": "secret", "org_id": "nope"} {
		_, err := (&Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "member", PK: pk, Column: col}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), `no column "nope"`) {
			t.Errorf("--pk %s --column %s: %v, want the missing column named", pk, col, err)
		}
	}
	if _, err := (&Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "nope", PK: "id", Column: "secret"}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a missing table: %v", err)
	}
}

// TestCheckpointUnderAnotherPrimaryKey: the sidecar's primary key changed
// since the checkpoint was written, so the rows before it are under a key
// that is no longer the primary. The run refuses to resume, naming both
// keys, and writes nothing; --restart walks the whole table.
func TestCheckpointUnderAnotherPrimaryKey(t *testing.T) {
	primary, old, newer := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	dsn, a := sqliteTableUnder(t, old, 40)
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	stop := make(chan struct{})
	job := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 10,
		Checkpoint: cp, Interrupt: stop, Progress: func(Progress) { close(stop) }}
	if _, err := job.Run(context.Background()); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run = %v, want it interrupted after a batch", err)
	}
	st, ok, err := cp.Load()
	if err != nil || !ok || st.PrimaryKeyID != primary.ID() {
		t.Fatalf("checkpoint %+v, %v, %v: want the primary key id %s in it", st, ok, err, primary.ID())
	}

	before := a.snapshot("totp")
	rerun := func(restart bool) (*Report, error) {
		return (&Job{DB: openJobDB(t, dsn, false), Crypter: newFake(newer, primary, old), Table: "totp", PK: "id", Column: "secret", BatchSize: 10,
			Checkpoint: cp, Restart: restart}).Run(context.Background())
	}
	_, err = rerun(false)
	want := fmt.Sprintf("primary key was %s; it is now %s", primary.ID(), newer.ID())
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--restart") {
		t.Errorf("resumed under another primary key: %v, want an error with %q and --restart", err, want)
	}
	a.wantUnchanged("totp", before, "the refused run wrote rows")
	r, err := rerun(true)
	if err != nil || !r.ResumedAfter.IsZero() || r.Rewritten != 40 || r.Remaining() != 0 {
		t.Errorf("--restart: %v, resumed after %s, rewritten %d; want all 40 under the new primary key", err, r.ResumedAfter, r.Rewritten)
	}
}

// testRunLeavesJob: Run fills in defaults on a copy, so a Job run twice, or
// read after the run, is still what the caller wrote.
func testRunLeavesJob(t *testing.T, kind, dsn string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret TEXT)")
	a.insert("totp", []any{int64(1), int64(2)}, []any{testkeys.Token(t, old, "s", baseTS), "JBSWY3DPEHPK3PXP"})
	job := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret", EncryptPlaintext: true}
	before := *job
	r := run(t, job)
	if !reflect.DeepEqual(*job, before) {
		t.Errorf("Run changed the caller's Job:\n%+v\nwas\n%+v", *job, before)
	}
	if r.Rewritten != 1 || r.PlaintextEncrypted != 1 {
		t.Errorf("rewritten %d, plaintext encrypted %d; want 1 and 1 (the defaults applied to the run)", r.Rewritten, r.PlaintextEncrypted)
	}
}

// TestColumnTooShortForTokens: a column too short for the new tokens
// fails the batch, which rolls back, with a message that says so and
// quotes no value. MariaDB runs without strict mode, as a legacy server
// may: it would cut the token to fit and commit, losing the row, unless
// the job's connections make themselves strict.
func TestColumnTooShortForTokens(t *testing.T) {
	for kind, serverModes := range map[string][]string{Postgres: {""}, MySQL: {"", "NO_ENGINE_SUBSTITUTION"}} {
		fresh := freshDatabases(t, kind)
		for _, serverMode := range serverModes {
			t.Run(kind+" sql_mode="+serverMode, func(t *testing.T) { testColumnTooShort(t, kind, fresh(t), serverMode) })
		}
	}
}

func testColumnTooShort(t *testing.T, kind, dsn, serverMode string) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	if kind == MySQL {
		a.exec("SET GLOBAL sql_mode = ?", serverMode)
	}
	// django-otp's 40 hex digits encrypt to 140 characters.
	a.exec("CREATE TABLE totp (id BIGINT PRIMARY KEY, secret VARCHAR(120))")
	hexKey := "3132333435363738393031323334353637383930"
	token := testkeys.Token(t, old, "s2", baseTS)
	a.insert("totp", []any{int64(1), int64(2)}, []any{hexKey, token})
	before := a.snapshot("totp")
	db := openJobDB(t, dsn, false)
	_, err := (&Job{DB: db, Crypter: newFake(primary, old), Table: "totp", PK: "id", Column: "secret",
		LegacyPlaintext: TOTPHex, EncryptPlaintext: true}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "too short for the new tokens: 140 characters needed") ||
		strings.Contains(err.Error(), hexKey) || strings.Contains(err.Error(), token) {
		t.Errorf("Run = %v, want the column called too short, 140 characters needed, and no value", err)
	}
	a.wantUnchanged("totp", before, "a batch with a token too long for its column was written")
	if kind == MySQL {
		var mode string
		want := strings.Fields(serverMode + " STRICT_ALL_TABLES")
		err := db.SQL.QueryRow("SELECT @@SESSION.sql_mode").Scan(&mode)
		got := strings.Split(mode, ",")
		slices.Sort(got)
		slices.Sort(want)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("the job's sql_mode is %q (%v), want %v: STRICT_ALL_TABLES added to the server's modes", mode, err, want)
		}
	}
}

// TestPrimaryKeyUnconfirmedAfterTheRun: the sidecar cannot be reached
// when the walk ends. Every row was walked and rewritten, and the run
// says so; it cannot say the primary is still the one it used, so it is
// not complete (PrimaryInDoubt), rather than failed.
func TestPrimaryKeyUnconfirmedAfterTheRun(t *testing.T) {
	primary, old := testkeys.New(t), testkeys.New(t)
	dsn, a := sqliteTableUnder(t, old, 30)
	sidecar := newFake(primary, old)
	job := &Job{DB: openJobDB(t, dsn, false), Crypter: sidecar, Table: "totp", PK: "id", Column: "secret", BatchSize: 10,
		Progress: func(p Progress) {
			if p.Done == 30 {
				sidecar.mu.Lock()
				sidecar.keysDown = true
				sidecar.mu.Unlock()
			}
		}}
	r := run(t, job)
	var out strings.Builder
	r.Write(&out)
	if !r.Complete || r.PrimaryUnconfirmed == nil || !r.PrimaryInDoubt() || r.Rewritten != 30 ||
		!strings.HasPrefix(out.String(), "rotated: walked to the end, but the sidecar's primary key could not be confirmed after it; run --check\n") {
		t.Errorf("complete %v, unconfirmed %v, rewritten %d; want true, an error, 30:\n%s", r.Complete, r.PrimaryUnconfirmed, r.Rewritten, out.String())
	}
	for id := int64(1); id <= 30; id++ {
		wantUnder(t, primary, a.value("totp", "id", id), fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
	}
}

// TestPrimaryKeyChangedDuringTheRun: the sidecar's keys are read at the
// start; a reload mid-run leaves the rows done before it under a key that
// is no longer the primary. The run walks to the end but does not call
// itself complete, and says to run again; the next run finishes the job.
// A --check counted against the old primary is not complete either.
func TestPrimaryKeyChangedDuringTheRun(t *testing.T) {
	primary, old, newer := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	dsn, a := sqliteTableUnder(t, old, 30)
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	sidecar := newFake(primary, old)
	sidecar.beforeReEncrypt = func(call int) {
		if call == 2 {
			sidecar.setKeys(newer, primary, old)
		}
	}
	job := func(mode Mode) *Job {
		return &Job{DB: openJobDB(t, dsn, mode != Rotate), Crypter: sidecar, Table: "totp", PK: "id", Column: "secret", BatchSize: 10, Mode: mode, Checkpoint: cp}
	}
	r := run(t, job(Rotate))
	var out strings.Builder
	r.Write(&out)
	if r.NewPrimary != newer.ID() || r.Rewritten != 30 || r.Remaining() != 0 ||
		!strings.HasPrefix(out.String(), "rotated: NOT complete: the sidecar's primary key changed during the run, to "+newer.ID()+"; run again\n") {
		t.Errorf("new primary %q, rewritten %d, remaining %d; want %s, 30, 0:\n%s", r.NewPrimary, r.Rewritten, r.Remaining(), newer.ID(), out.String())
	}
	if _, ok, err := cp.Load(); ok || err != nil {
		t.Errorf("the checkpoint is still there (%v): the next run must walk the whole table", err)
	}

	sidecar.beforeReEncrypt = nil
	r = run(t, job(Rotate))
	if r.NewPrimary != "" || r.Rewritten != 10 || r.Current != 20 {
		t.Errorf("the run after: new primary %q, rewritten %d, current %d; want none, 10 (the rows done before the reload), 20", r.NewPrimary, r.Rewritten, r.Current)
	}
	for id := int64(1); id <= 30; id++ {
		wantUnder(t, newer, a.value("totp", "id", id), fmt.Sprint("secret-", id), baseTS+uint64(id), fmt.Sprint("row ", id))
	}

	// A check that finds every row under the primary key it started with,
	// which a reload after its first batch demoted.
	check := job(Check)
	check.Progress = func(p Progress) {
		if p.Done == 10 {
			sidecar.setKeys(old, newer)
		}
	}
	r = run(t, check)
	if r.NewPrimary != old.ID() || r.Remaining() != 0 || r.ByKey[newer.ID()] != 30 {
		t.Errorf("check: new primary %q, remaining %d, under %s %d; want %s, 0, 30", r.NewPrimary, r.Remaining(), newer.ID(), r.ByKey[newer.ID()], old.ID())
	}
}
