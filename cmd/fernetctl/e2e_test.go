package main

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// The end-to-end tests run the real binaries: fernet-sidecar, built from
// this repository, and fernetctl, built without -race (it is a separate
// process, and 100k rows under the race detector would take minutes).

// binDir holds the binaries, built at most once per test run, when a test
// first needs them.
var binDir string

var binaries = sync.OnceValues(func() (map[string]string, error) {
	bins := map[string]string{}
	for name, pkg := range map[string]string{"fernet-sidecar": "../fernet-sidecar", "fernetctl": "."} {
		bin := filepath.Join(binDir, name)
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		bins[name] = bin
	}
	return bins, nil
})

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "fernetctl-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

func binary(t *testing.T, name string) string {
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return bins[name]
}

// startSidecar runs the real sidecar with these keys and returns the
// address it serves on, from its JSON "serving" log line.
func startSidecar(t *testing.T, primary, old *fernet.Key, addr string, flags ...string) string {
	t.Helper()
	env := []string{"DJANGO_ENCRYPTION_KEY=" + primary.Encode(), "OLD_DJANGO_ENCRYPTION_KEY=" + old.Encode()}
	return sidecartest.Start(t, binary(t, "fernet-sidecar"), env, append([]string{"--addr", addr, "--metrics-addr", ""}, flags...)...).Addr
}

// tool is one fernetctl process.
type tool struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

func startTool(t *testing.T, dir string, args ...string) *tool {
	t.Helper()
	return startToolBinary(t, binary(t, "fernetctl"), dir, args...)
}

func startToolBinary(t *testing.T, bin, dir string, args ...string) *tool {
	t.Helper()
	tl := &tool{cmd: exec.Command(bin, append([]string{"reencrypt"}, args...)...), done: make(chan struct{})}
	tl.cmd.Dir = dir
	tl.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	tl.cmd.Stdout, tl.cmd.Stderr = &tl.stdout, &tl.stderr
	if err := tl.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { tl.cmd.Wait(); close(tl.done) }()
	t.Cleanup(func() {
		select {
		case <-tl.done:
		default:
			tl.cmd.Process.Kill()
			<-tl.done
		}
	})
	return tl
}

// wait returns the exit code, failing the test after limit.
func (tl *tool) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-tl.done:
	case <-time.After(limit):
		tl.cmd.Process.Kill()
		<-tl.done
		t.Fatalf("fernetctl still running after %s\nstdout:\n%s\nstderr:\n%s", limit, &tl.stdout, &tl.stderr)
	}
	return tl.cmd.ProcessState.ExitCode()
}

// interruptPast sends SIGINT once the checkpoint is past id, and waits
// for the tool to exit 130.
func (tl *tool) interruptPast(t *testing.T, state string, id int64) {
	t.Helper()
	for checkpointLastPK(state) < id {
		select {
		case <-tl.done:
			t.Fatalf("ended before the interrupt:\n%s", &tl.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := tl.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := tl.wait(t, 30*time.Second); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want %d\n%s", code, exitInterrupted, &tl.stderr)
	}
}

func runTool(t *testing.T, dir string, limit time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	tl := startTool(t, dir, args...)
	code = tl.wait(t, limit)
	return code, tl.stdout.String(), tl.stderr.String()
}

// checkpointLastPK reads the checkpoint's last primary key; 0 when there
// is none (yet), or while it is being replaced.
func checkpointLastPK(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var st struct {
		LastPK struct{ Int string } `json:"last_pk"`
	}
	if json.Unmarshal(data, &st) != nil {
		return 0
	}
	n, _ := strconv.ParseInt(st.LastPK.Int, 10, 64)
	return n
}

// The fixture: one row per id, most under the old key, and every kind of
// row the tool must handle, in fixed places.
const (
	fixtureRows = 100_000
	fixtureTS   = 1_600_000_000
)

type kind int

const (
	kindOld kind = iota
	kindPrimary
	kindNull
	kindEmpty
	kindMalformed
	kindStranger // a token under a key the sidecar does not have
	kindLegacy   // a bare base32 secret
)

func kindOf(id int64) kind {
	switch {
	case id%1000 >= 1 && id%1000 <= 5:
		return kindNull
	case id%1000 == 6:
		return kindEmpty
	case id%10000 == 7:
		return kindMalformed
	case id%10000 == 8:
		return kindStranger
	case id%5000 == 9:
		return kindLegacy
	case id%100 == 50:
		return kindPrimary
	}
	return kindOld
}

// secretOf is row id's TOTP secret, as an app would keep it: base32.
func secretOf(id int64) string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(id, 10)))
	return base32.StdEncoding.EncodeToString(sum[:10])
}

// expectation is what a row must hold at the end.
type expectation struct {
	kind      kind
	raw       any    // the value itself, for rows left alone
	plaintext string // for rows that must decrypt
	ts        uint64 // 0: any timestamp (legacy plaintext encrypted now)
}

type fixture struct {
	t             *testing.T
	dialect       string // "sqlite" or "postgres"
	app           *sql.DB
	primary, old  *fernet.Key
	mu            sync.Mutex
	want          map[int64]expectation
	undecryptable int
}

func newFixture(t *testing.T, dialect string, app *sql.DB, primary, old *fernet.Key, rows int64) *fixture {
	t.Helper()
	f := &fixture{t: t, dialect: dialect, app: app, primary: primary, old: old, want: map[int64]expectation{}}
	stranger, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.exec(`CREATE TABLE otp_totpdevice (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ` + f.key() + ` TEXT)`)
	seal := func(k *fernet.Key, p string, ts uint64) string {
		e, err := fernet.NewKeyring(k).EncryptAtTime([]byte(p), ts)
		if err != nil {
			t.Fatal(err)
		}
		return e.Token
	}
	ids := make([]int64, 0, rows)
	vals := make([]any, 0, rows)
	for id := int64(1); id <= rows; id++ {
		k, secret, ts := kindOf(id), secretOf(id), uint64(fixtureTS+id)
		var v any
		switch k {
		case kindOld:
			v = seal(old, secret, ts)
		case kindPrimary:
			v = seal(primary, secret, ts)
		case kindNull:
		case kindEmpty:
			v = ""
		case kindMalformed:
			v = "not-a-token-" + strconv.FormatInt(id, 10)
			f.undecryptable++
		case kindStranger:
			v = seal(stranger, secret, ts)
			f.undecryptable++
		case kindLegacy:
			v, ts = secret, 0
		}
		ids, vals = append(ids, id), append(vals, v)
		f.want[id] = expectation{kind: k, raw: v, plaintext: secret, ts: ts}
	}
	// Many rows per INSERT: a statement per row would dominate the test.
	const per = 500
	tx, err := app.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += per {
		end := min(i+per, len(ids))
		var q strings.Builder
		q.WriteString(`INSERT INTO otp_totpdevice (id, name, ` + f.key() + `) VALUES `)
		args := make([]any, 0, 2*(end-i))
		for j := i; j < end; j++ {
			if j > i {
				q.WriteString(",")
			}
			fmt.Fprintf(&q, "(%s, 'device', %s)", f.ph(len(args)+1), f.ph(len(args)+2))
			args = append(args, ids[j], vals[j])
		}
		if _, err := tx.Exec(q.String(), args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return f
}

// key is the token column's name, quoted: "key" is a keyword in MySQL.
func (f *fixture) key() string {
	if f.dialect == "mysql" {
		return "`key`"
	}
	return `"key"`
}

func (f *fixture) ph(n int) string {
	if f.dialect == "postgres" {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

func (f *fixture) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.app.Exec(q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

// appWriter plays the app during the rotation: it rewrites rows just
// ahead of the tool's checkpoint (where its batch in flight is most likely
// to be), with new secrets under the primary key as the upgraded app does,
// until stop is closed or it has made max writes.
func (f *fixture) appWriter(statePath string, stop <-chan struct{}, max int) (done <-chan int) {
	out := make(chan int, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		update := fmt.Sprintf(`UPDATE otp_totpdevice SET %s = %s WHERE id = %s`, f.key(), f.ph(1), f.ph(2))
		writes := 0
		defer func() { out <- writes }()
		for writes < max {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			// Ids that are multiples of 10 (but not of 50) are ordinary rows.
			base := checkpointLastPK(statePath)
			id := (base/10 + 1 + rng.Int64N(300)) * 10
			if id%100 == 50 || id > fixtureRows {
				continue
			}
			plaintext := fmt.Sprintf("app-%d-%d", id, writes)
			ts := uint64(time.Now().Unix())
			tok, err := fernet.NewKeyring(f.primary).EncryptAtTime([]byte(plaintext), ts)
			if err != nil {
				f.t.Error(err)
				return
			}
			// Record before writing: the final check happens after this
			// goroutine ends, and a write the database took must be known.
			f.mu.Lock()
			if _, err := f.app.Exec(update, tok.Token, id); err != nil {
				f.mu.Unlock()
				f.t.Errorf("app write: %v", err)
				return
			}
			f.want[id] = expectation{kind: kindPrimary, raw: tok.Token, plaintext: plaintext, ts: ts}
			f.mu.Unlock()
			writes++
		}
	}()
	return out
}

// verify reads every row and holds it to its expectation: rotated rows
// decrypt under the primary key alone to their original plaintext and
// timestamp, the app's writes are the app's, and rows that must be left
// alone are byte for byte what they were.
func (f *fixture) verify() {
	t := f.t
	t.Helper()
	only := fernet.NewKeyring(f.primary)
	rows, err := f.app.Query(`SELECT id, ` + f.key() + ` FROM otp_totpdevice ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen, bad := 0, 0
	fail := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for rows.Next() {
		var id int64
		var v any
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if b, ok := v.([]byte); ok { // MySQL's driver gives text as bytes
			v = string(b)
		}
		seen++
		w, ok := f.want[id]
		if !ok {
			fail("row %d: unexpected", id)
			continue
		}
		switch w.kind {
		case kindNull, kindEmpty, kindMalformed, kindStranger:
			if v != w.raw {
				fail("row %d (kind %d): changed; it must be left alone", id, w.kind)
			}
			continue
		}
		s, _ := v.(string)
		d, err := only.Decrypt(s)
		switch {
		case err != nil:
			fail("row %d (kind %d): does not decrypt under the new key alone: %v", id, w.kind, err)
		case string(d.Plaintext) != w.plaintext:
			fail("row %d (kind %d): wrong plaintext", id, w.kind)
		case w.ts != 0 && d.Timestamp != w.ts:
			fail("row %d (kind %d): timestamp %d, want %d", id, w.kind, d.Timestamp, w.ts)
		case w.kind == kindPrimary && s != w.raw:
			fail("row %d: already canonical under the primary key, yet rewritten", id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(f.want) {
		t.Errorf("%d rows, want %d", seen, len(f.want))
	}
	if bad > 0 {
		t.Errorf("%d rows wrong", bad)
	}
}

// rowsUpTo counts the rows with ids up to last.
func (f *fixture) rowsUpTo(last int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id := range f.want {
		if id <= last {
			n++
		}
	}
	return n
}

// noValues fails if tool output holds a token or a plaintext.
func (f *fixture) noValues(output string) {
	f.t.Helper()
	if strings.Contains(output, "gAAAAA") {
		f.t.Error("fernetctl printed a token")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, w := range f.want {
		if (w.kind == kindLegacy || id%97 == 0) && w.plaintext != "" && strings.Contains(output, w.plaintext) {
			f.t.Errorf("fernetctl printed row %d's plaintext", id)
		}
		if w.kind == kindMalformed && strings.Contains(output, w.raw.(string)) {
			f.t.Errorf("fernetctl printed row %d's value", id)
		}
	}
}

var rateLine = regexp.MustCompile(`(?m)^rate +(\d+) rows/s$`)

// startDatabase gives a new database of the dialect: the DSN fernetctl
// takes, and the app's own connection.
func startDatabase(t *testing.T, dialect string) (dsn string, app *sql.DB) {
	t.Helper()
	return databases(t, dialect)("app")
}

// databases starts a server of the dialect (none for SQLite) and returns
// a function that makes a new database on it.
func databases(t *testing.T, dialect string) func(name string) (dsn string, app *sql.DB) {
	t.Helper()
	switch dialect {
	case "postgres":
		pg := dbtest.StartPostgres(t)
		return func(name string) (string, *sql.DB) {
			dsn := pg.CreateDatabase(t, name)
			return dsn, dbtest.OpenPostgres(t, dsn)
		}
	case "mysql":
		my := dbtest.StartMariaDB(t)
		return func(name string) (string, *sql.DB) {
			dsn := my.DSN // StartMariaDB made my.Database already
			if name != my.Database {
				dsn = my.CreateDatabase(t, name)
			}
			app := dbtest.OpenMariaDB(t, dsn)
			return "mysql://" + my.User + "@localhost/" + name + "?unix_socket=" + my.Socket, app
		}
	}
	return func(string) (string, *sql.DB) {
		dsn := dbtest.SQLiteFile(t)
		return dsn, dbtest.OpenSQLite(t, dsn)
	}
}

// dialects are the databases the end-to-end tests run against.
var dialects = []string{"sqlite", "postgres", "mysql"}

// TestRotate100kWithAppWritesKillAndResume is the acceptance test,
// for SQLite, PostgreSQL and MariaDB: 100k rows, the app writing
// meanwhile, the tool SIGKILLed mid-way and resumed, every row checked.
func TestRotate100kWithAppWritesKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("100k rows; skipped with -short")
	}
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			dsn, app := startDatabase(t, dialect)
			sidecarAddr := "127.0.0.1:0"
			batch := "1000"
			if dialect == "sqlite" {
				sidecarAddr = "unix://" + filepath.Join(t.TempDir(), "fernet.sock")
				batch = "2500" // more than one RPC per batch
			}
			primary, old := testkeys.New(t), testkeys.New(t)
			addr := startSidecar(t, primary, old, sidecarAddr)
			started := time.Now()
			f := newFixture(t, dialect, app, primary, old, fixtureRows)
			t.Logf("fixture: %d rows in %s", fixtureRows, time.Since(started).Round(time.Millisecond))

			dir := t.TempDir()
			state := filepath.Join(dir, "state.json")
			args := []string{"--dsn", dsn, "--table", "otp_totpdevice", "--column", "key", "--sidecar", addr,
				"--state", state, "--batch-size", batch, "--encrypt-plaintext", "--progress-interval", "300ms"}
			stopApp := make(chan struct{})
			appDone := f.appWriter(state, stopApp, 3000)
			defer func() {
				select {
				case <-stopApp:
				default:
					close(stopApp)
				}
			}()

			// First run: SIGKILL once a third of the table is done.
			first := startTool(t, dir, args...)
			deadline := time.Now().Add(90 * time.Second)
			for checkpointLastPK(state) < fixtureRows/3 {
				select {
				case <-first.done:
					t.Fatalf("fernetctl ended before it could be killed (exit %d):\n%s\n%s", first.cmd.ProcessState.ExitCode(), &first.stdout, &first.stderr)
				case <-time.After(10 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("no checkpoint past %d after 90s:\n%s", fixtureRows/3, &first.stderr)
				}
			}
			if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-first.done
			killedAt := checkpointLastPK(state)
			if killedAt <= 0 || killedAt >= fixtureRows {
				t.Fatalf("killed at checkpoint %d: not mid-way", killedAt)
			}
			t.Logf("SIGKILLed with the checkpoint at id %d", killedAt)

			// Second run resumes from the checkpoint, the app still writing.
			code, stdout, stderr := runTool(t, dir, 120*time.Second, args...)
			close(stopApp)
			writes := <-appDone
			t.Logf("resumed run:\n%s", stdout)
			if code != exitRemaining { // the undecryptable rows remain
				t.Fatalf("resumed run exit %d, want %d\nstderr:\n%s", code, exitRemaining, stderr)
			}
			if want := fmt.Sprintf("resumed after primary key   %d\n", killedAt); !strings.Contains(stdout, want) {
				t.Errorf("resumed run does not say %q", want)
			}
			// It checked the rows before the checkpoint: none under the old key.
			for _, want := range []string{
				fmt.Sprintf("before the checkpoint       %d rows checked\n", f.rowsUpTo(killedAt)),
				fmt.Sprintf("  under old     key %s  0\n", old.ID()),
			} {
				if !strings.Contains(stdout, want) {
					t.Errorf("resumed run does not say %q", want)
				}
			}
			if !strings.Contains(stderr, "progress: ") {
				t.Errorf("no progress lines on a non-terminal stderr:\n%s", stderr)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Errorf("checkpoint left after a complete run: %v", err)
			}
			f.noValues(stdout + stderr + first.stdout.String() + first.stderr.String())
			if m := rateLine.FindStringSubmatch(stdout); m != nil {
				t.Logf("%s: resumed run rate %s rows/s, %d app writes during the runs", dialect, m[1], writes)
			} else {
				t.Errorf("no rate in the summary")
			}
			f.verify()

			// --check now: everything under the primary key but the
			// undecryptable rows, which it lists by id.
			code, stdout, stderr = runTool(t, dir, 60*time.Second, "--dsn", dsn, "--table", "otp_totpdevice", "--column", "key", "--sidecar", addr, "--check")
			if code != exitRemaining {
				t.Errorf("--check exit %d, want %d\n%s", code, exitRemaining, stderr)
			}
			nulls := fixtureRows / 1000 * 6 // NULL and ''
			for _, want := range []string{
				fmt.Sprintf("under primary key %s  %d\n", primary.ID(), fixtureRows-nulls-f.undecryptable),
				fmt.Sprintf("under old     key %s  0\n", old.ID()),
				fmt.Sprintf("undecryptable               %d\n", f.undecryptable),
				"  MALFORMED: ids 7, 10007, 20007,",
				"  INVALID_SIGNATURE: ids 8, 10008, 20008,",
			} {
				if !strings.Contains(stdout, want) {
					t.Errorf("--check output lacks %q:\n%s", want, stdout)
				}
			}
			f.noValues(stdout + stderr)

			// A rerun is idempotent: it walks everything and writes nothing.
			code, stdout, _ = runTool(t, dir, 120*time.Second, args...)
			if code != exitRemaining || !strings.Contains(stdout, "re-encrypted                0\n") || !strings.Contains(stdout, "plaintext encrypted         0\n") {
				t.Errorf("rerun exit %d, want %d and nothing written:\n%s", code, exitRemaining, stdout)
			}
			f.verify()
		})
	}
}

// sqliteFixture starts a sidecar with two new keys and sidecarFlags, fills
// a new SQLite database with the fixture's rows under those keys, and
// returns the fixture and the fernetctl flags that name both.
func sqliteFixture(t *testing.T, rows int64, sidecarFlags ...string) (*fixture, []string) {
	t.Helper()
	dsn := dbtest.SQLiteFile(t)
	primary, old := testkeys.New(t), testkeys.New(t)
	addr := startSidecar(t, primary, old, "127.0.0.1:0", sidecarFlags...)
	f := newFixture(t, "sqlite", dbtest.OpenSQLite(t, dsn), primary, old, rows)
	return f, []string{"--dsn", "sqlite:" + dsn, "--table", "otp_totpdevice", "--column", "key", "--sidecar", addr}
}

// TestInterruptFinishesTheBatchAndResumes: SIGINT mid-way commits the
// batch in flight, saves the checkpoint, exits 130 saying how to resume,
// and leaves every row after the checkpoint untouched; --check and
// --dry-run before it count exactly and write nothing.
func TestInterruptFinishesTheBatchAndResumes(t *testing.T) {
	const rows = 20_000
	f, common := sqliteFixture(t, rows)
	app, primary, old := f.app, f.primary, f.old
	dir := t.TempDir()

	before := snapshot(t, app)
	code, stdout, stderr := runTool(t, dir, 60*time.Second, append(common, "--check", "--legacy-plaintext")...)
	t.Logf("--check:\n%s", stdout)
	nulls, legacy, onPrimary := rows/1000*6, 4, rows/100
	onOld := rows - nulls - legacy - f.undecryptable - onPrimary
	for _, want := range []string{
		"check: complete\n",
		fmt.Sprintf("rows scanned                %d\n", rows),
		fmt.Sprintf("NULL or empty               %d\n", nulls),
		fmt.Sprintf("under primary key %s  %d\n", primary.ID(), onPrimary),
		fmt.Sprintf("under old     key %s  %d\n", old.ID(), onOld),
		"undecryptable               4\n  MALFORMED: ids 7, 10007\n  INVALID_SIGNATURE: ids 8, 10008\n",
		"legacy plaintext            4\n  plaintext: ids 9, 5009, 10009, 15009\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--check lacks %q:\n%s", want, stdout)
		}
	}
	if code != exitRemaining {
		t.Errorf("--check exit %d, want %d", code, exitRemaining)
	}
	code, stdout, _ = runTool(t, dir, 60*time.Second, append(common, "--dry-run", "--encrypt-plaintext")...)
	if want := fmt.Sprintf("would re-encrypt            %d\n", onOld); !strings.Contains(stdout, want) || code != exitRemaining {
		t.Errorf("--dry-run exit %d, lacks %q:\n%s", code, want, stdout)
	}
	f.noValues(stdout + stderr)
	if after := snapshot(t, app); !maps.Equal(before, after) {
		t.Fatal("--check or --dry-run changed the table")
	}

	state := filepath.Join(dir, ".fernetctl-otp_totpdevice.key.json") // the default
	tl := startTool(t, dir, append(common, "--batch-size", "200", "--encrypt-plaintext")...)
	tl.interruptPast(t, state, 2000)
	if !strings.Contains(tl.stderr.String(), "run the same command again to resume") || !strings.Contains(tl.stdout.String(), "INCOMPLETE") {
		t.Errorf("after SIGINT, no word on resuming:\n%s\n%s", &tl.stdout, &tl.stderr)
	}
	last := checkpointLastPK(state)
	if last <= 0 || last%200 != 0 || last >= rows {
		t.Fatalf("checkpoint at %d after SIGINT: want a whole batch, mid-way", last)
	}
	// Every row up to the checkpoint is done and none after it is touched:
	// the batch in flight finished and was checkpointed, and nothing more.
	now := snapshot(t, app)
	for id := int64(1); id <= rows; id++ {
		k := kindOf(id)
		if id > last || k != kindOld && k != kindLegacy {
			if now[id] != before[id] {
				t.Fatalf("row %d (after the checkpoint %d, or not to be rewritten) changed", id, last)
			}
			continue
		}
		if now[id] == before[id] {
			t.Fatalf("row %d is before the checkpoint %d but was not rewritten", id, last)
		}
	}

	// A resume with another --encrypt-plaintext would skip rows it
	// matters for: refused.
	if code, _, stderr := runTool(t, dir, 60*time.Second, common...); code != exitFailed || !strings.Contains(stderr, "--encrypt-plaintext") {
		t.Errorf("resume without --encrypt-plaintext: exit %d, want %d\n%s", code, exitFailed, stderr)
	}
	code, stdout, stderr = runTool(t, dir, 60*time.Second, append(common, "--encrypt-plaintext")...)
	if code != exitRemaining || !strings.HasPrefix(stdout, "rotated: complete\n") ||
		!strings.Contains(stdout, fmt.Sprintf("resumed after primary key   %d\n", last)) ||
		!strings.Contains(stdout, fmt.Sprintf("rows scanned                %d\n", rows-last)) {
		t.Errorf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	f.verify()
}

// TestLeastPrivilegeProfile runs --check, a rotation and django-otp's
// plaintext migration against a sidecar that serves only docs/totp.md's
// TOTP-only profile: no method that returns a plaintext, yet fernetctl
// checks, rotates and encrypts legacy rows.
func TestLeastPrivilegeProfile(t *testing.T) {
	const rows = 2000
	f, common := sqliteFixture(t, rows, "--allow-methods", testenv.TOTPOnlyProfile(t))
	app, primary, old := f.app, f.primary, f.old
	dir := t.TempDir()
	onOld := "under old     key " + old.ID() + "  "

	code, stdout, stderr := runTool(t, dir, 60*time.Second, append(common, "--check")...)
	if code != exitRemaining || !strings.Contains(stdout, "check: complete\n") || !strings.Contains(stdout, onOld) {
		t.Fatalf("--check: exit %d, want %d and %q\n%s\n%s", code, exitRemaining, onOld, stdout, stderr)
	}
	code, stdout, stderr = runTool(t, dir, 60*time.Second, common...)
	if code != exitRemaining || !strings.Contains(stdout, "complete") {
		t.Fatalf("rotation: exit %d, want %d (undecryptable rows stay)\n%s\n%s", code, exitRemaining, stdout, stderr)
	}
	code, stdout, stderr = runTool(t, dir, 60*time.Second, append(common, "--check")...)
	if code != exitRemaining || !strings.Contains(stdout, onOld+"0\n") {
		t.Errorf("--check after the rotation: exit %d, and rows still under the old key?\n%s\n%s", code, stdout, stderr)
	}
	f.noValues(stdout + stderr)

	// django-otp's migration: its plaintext hex keys go in through
	// EncryptBatch, which returns only tokens.
	hexKeys := map[int64]string{rows + 1: "3132333435363738393031323334353637383930", rows + 2: "0123456789abcdef0123456789abcdef01234567"}
	for id, key := range hexKeys {
		f.exec(`INSERT INTO otp_totpdevice (id, name, "key") VALUES (?, 'device', ?)`, id, key)
	}
	code, stdout, stderr = runTool(t, dir, 60*time.Second, append(common, "--encrypt-plaintext", "--legacy-plaintext", "totp-hex")...)
	if code != exitRemaining || !strings.Contains(stdout, "plaintext encrypted         2\n") {
		t.Fatalf("--encrypt-plaintext --legacy-plaintext totp-hex: exit %d, want %d and 2 rows encrypted\n%s\n%s", code, exitRemaining, stdout, stderr)
	}
	for id, key := range hexKeys {
		var token string
		if err := app.QueryRow(`SELECT "key" FROM otp_totpdevice WHERE id = ?`, id).Scan(&token); err != nil {
			t.Fatal(err)
		}
		if d, err := fernet.NewKeyring(primary).Decrypt(token); err != nil || string(d.Plaintext) != key {
			t.Errorf("row %d: %v, want its hex key encrypted under the primary key", id, err)
		}
	}
}

// snapshot returns every TOTP device's key by id.
func snapshot(t *testing.T, db *sql.DB) map[int64]any {
	t.Helper()
	return dbtest.Snapshot(t, db, `SELECT id, "key" FROM otp_totpdevice`)
}

// TestRestoreAfterCheckpoint: a run is stopped, then the database is
// restored from a backup taken before the run, so the checkpoint claims
// work the database no longer holds. The resumed run must say so and
// exit 3, not 0; the next run, with the checkpoint gone, fixes it all.
func TestRestoreAfterCheckpoint(t *testing.T) {
	dsn := dbtest.SQLiteFile(t)
	app := dbtest.OpenSQLite(t, dsn)
	primary, old := testkeys.New(t), testkeys.New(t)
	addr := startSidecar(t, primary, old, "127.0.0.1:0")
	f := newFixture(t, "sqlite", app, primary, old, 10_000)
	backup := snapshot(t, app)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	args := []string{"--dsn", dsn, "--table", "otp_totpdevice", "--column", "key", "--sidecar", addr, "--state", state,
		"--batch-size", "100", "--encrypt-plaintext"}

	startTool(t, dir, args...).interruptPast(t, state, 3000)
	last := checkpointLastPK(state)

	// The restore: every row as it was before the run.
	tx, err := app.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range backup {
		if _, err := tx.Exec(`UPDATE otp_totpdevice SET "key" = ? WHERE id = ?`, v, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var stale int
	for id := int64(1); id <= last; id++ {
		if kindOf(id) == kindOld {
			stale++
		}
	}

	code, stdout, stderr := runTool(t, dir, 60*time.Second, args...)
	if code != exitRemaining || !strings.HasPrefix(stdout, fmt.Sprintf("rotated: complete, but %d rows before the checkpoint are under an old key\n", stale)) ||
		!strings.Contains(stdout, fmt.Sprintf("resumed after primary key   %d\n", last)) ||
		!strings.Contains(stdout, fmt.Sprintf("  under old     key %s  %d\n", old.ID(), stale)) ||
		!strings.Contains(stderr, fmt.Sprintf("%d rows before the checkpoint are under an old key", stale)) {
		t.Errorf("resumed after a restore: exit %d, want %d, %d stale rows named\n%s\n%s", code, exitRemaining, stale, stdout, stderr)
	}
	code, stdout, _ = runTool(t, dir, 60*time.Second, args...)
	if code != exitRemaining || strings.Contains(stdout, "resumed") {
		t.Errorf("the run after: exit %d, want a whole walk\n%s", code, stdout)
	}
	f.verify()
}

// totpTable makes a SQLite database whose table totp (id, secret of
// secretType) holds rows, and returns its DSN and the app's connection.
func totpTable(t *testing.T, secretType string, rows map[int64]any) (string, *sql.DB) {
	t.Helper()
	dsn := dbtest.SQLiteFile(t)
	app := dbtest.OpenSQLite(t, dsn)
	if _, err := app.Exec("CREATE TABLE totp (id INTEGER PRIMARY KEY, secret " + secretType + ")"); err != nil {
		t.Fatal(err)
	}
	for id, v := range rows {
		if _, err := app.Exec("INSERT INTO totp VALUES (?, ?)", id, v); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, app
}

// TestPartialCheckWarns: a --check with --where or --shard sees only
// those rows. It says so on stderr, since a row outside them still under
// the old key would lock its user out once that key is retired; its exit
// code stays what the rows it saw make it.
func TestPartialCheckWarns(t *testing.T) {
	primary, old := testkeys.New(t), testkeys.New(t)
	addr := startSidecar(t, primary, old, "127.0.0.1:0")
	// Row 1, outside --where "id > 1" and shard 0/2, is under the old key.
	dsn, _ := totpTable(t, "TEXT", map[int64]any{
		1: testkeys.Token(t, old, "s", fixtureTS), 2: testkeys.Token(t, primary, "s", fixtureTS), 3: testkeys.Token(t, primary, "s", fixtureTS),
	})
	common := []string{"--dsn", dsn, "--table", "totp", "--column", "secret", "--sidecar", addr, "--check"}
	const warning = "cannot clear the old key's retirement; before retiring it, run --check without --where and --shard"
	for _, tc := range []struct {
		args  []string
		code  int
		warns string
	}{
		{[]string{"--where", "id > 1"}, exitOK, "covers only the rows within --where,"},
		{[]string{"--shard", "0/2"}, exitOK, "covers only the rows within --shard 0/2,"},
		{[]string{"--where", "id < 3", "--shard", "1/2"}, exitRemaining, "covers only the rows within --where and --shard 1/2,"},
		{nil, exitRemaining, ""},
	} {
		code, stdout, stderr := runTool(t, t.TempDir(), 60*time.Second, append(common, tc.args...)...)
		warned := strings.Contains(stderr, tc.warns) && strings.Contains(stderr, warning)
		if code != tc.code || warned != (tc.warns != "") {
			t.Errorf("--check %q: exit %d, want %d; warning %q wanted: %v\n%s\n%s", tc.args, code, tc.code, tc.warns, tc.warns != "", stdout, stderr)
		}
	}
}

// TestPrimaryKeyReloadedDuringTheRun: the real sidecar reloads its keys
// file mid-run (fernetctl stopped meanwhile, so the reload lands between
// two batches), and its primary changes. The run walks every row but
// exits 3, saying the primary changed and to run again; the next run
// exits 0 with every row under the new primary.
func TestPrimaryKeyReloadedDuringTheRun(t *testing.T) {
	primary, old, newer := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	keysFile := filepath.Join(t.TempDir(), "keys")
	writeKeys := func(keys ...*fernet.Key) {
		var list strings.Builder
		for _, k := range keys {
			list.WriteString(k.Encode() + "\n")
		}
		if err := os.WriteFile(keysFile, []byte(list.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys(primary, old)
	sidecar := sidecartest.Start(t, binary(t, "fernet-sidecar"), []string{"FERNET_SIDECAR_KEYS_FILE=" + keysFile},
		"--addr", "127.0.0.1:0", "--metrics-addr", "", "--watch-keys=false")
	const rows = 500
	underOld := map[int64]any{}
	for id := int64(1); id <= rows; id++ {
		underOld[id] = testkeys.Token(t, old, "s", fixtureTS)
	}
	dsn, _ := totpTable(t, "TEXT", underOld)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	args := []string{"--dsn", dsn, "--table", "totp", "--column", "secret", "--sidecar", sidecar.Addr, "--state", state, "--batch-size", "10"}

	tl := startTool(t, dir, args...)
	for checkpointLastPK(state) < 100 {
		select {
		case <-tl.done:
			t.Fatalf("ended before the reload:\n%s\n%s", &tl.stdout, &tl.stderr)
		case <-time.After(time.Millisecond):
		}
	}
	if err := tl.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	writeKeys(newer, primary, old)
	if err := sidecar.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(sidecar.Log(), `"keys changed"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar did not reload its keys:\n%s", sidecar.Log())
		}
	}
	if err := tl.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code := tl.wait(t, 60*time.Second)
	wantSaid := fmt.Sprintf("the sidecar's primary key changed during the run, from %s to %s", primary.ID(), newer.ID())
	if code != exitRemaining || !strings.Contains(tl.stderr.String(), wantSaid) || !strings.Contains(tl.stderr.String(), "run the same command again") ||
		!strings.HasPrefix(tl.stdout.String(), "rotated: NOT complete") {
		t.Errorf("exit %d, want %d and %q\n%s\n%s", code, exitRemaining, wantSaid, &tl.stdout, &tl.stderr)
	}

	code, stdout, stderr := runTool(t, dir, 60*time.Second, args...)
	if code != exitOK || !strings.HasPrefix(stdout, "rotated: complete\n") {
		t.Errorf("the run after: exit %d, want %d\n%s\n%s", code, exitOK, stdout, stderr)
	}
	code, stdout, stderr = runTool(t, dir, 60*time.Second, append(args, "--check")...)
	if want := fmt.Sprintf("under primary key %s  %d\n", newer.ID(), rows); code != exitOK || !strings.Contains(stdout, want) {
		t.Errorf("--check: exit %d, want %d and %q\n%s\n%s", code, exitOK, want, stdout, stderr)
	}
}

// TestBlobThatIsNotUTF8: through the real sidecar, a blob with stray
// non-ASCII bytes before a token rotates, as Python's Fernet reads it
// (Fernet(old).decrypt(b"\xff\xfe" + token) works), and a blob of those
// bytes alone is MALFORMED; neither fails the run.
func TestBlobThatIsNotUTF8(t *testing.T) {
	primary, old := testkeys.New(t), testkeys.New(t)
	addr := startSidecar(t, primary, old, "127.0.0.1:0")
	dsn, app := totpTable(t, "BLOB", map[int64]any{
		1: []byte("\xff\xfe" + testkeys.Token(t, old, "s1", fixtureTS)), 2: []byte("\xff\xfe"), 3: []byte(testkeys.Token(t, old, "s3", fixtureTS)),
	})
	code, stdout, stderr := runTool(t, t.TempDir(), 60*time.Second, "--dsn", dsn, "--table", "totp", "--column", "secret", "--sidecar", addr)
	if code != exitRemaining || !strings.Contains(stdout, "re-encrypted                2\n") || !strings.Contains(stdout, "MALFORMED: ids 2\n") {
		t.Errorf("exit %d, want %d, 2 rows re-encrypted and row 2 MALFORMED\n%s\n%s", code, exitRemaining, stdout, stderr)
	}
	for id, plaintext := range map[int64]string{1: "s1", 3: "s3"} {
		var token []byte
		if err := app.QueryRow("SELECT secret FROM totp WHERE id = ?", id).Scan(&token); err != nil {
			t.Fatal(err)
		}
		if d, err := fernet.NewKeyring(primary).Decrypt(string(token)); err != nil || string(d.Plaintext) != plaintext {
			t.Errorf("row %d: %v, want %q under the primary key", id, err, plaintext)
		}
	}
}
