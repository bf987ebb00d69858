package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// fakeCrypter is the sidecar in process: the real engine, the sidecar's
// reasons, and hooks to play the app between our read and our write.
type fakeCrypter struct {
	mu      sync.Mutex
	keyring *fernet.Keyring // setKeys replaces it: a reload
	// beforeReEncrypt runs at the start of each ReEncrypt call, with the
	// 1-based call number: the rows are read, not yet written.
	beforeReEncrypt func(call int)
	reencryptCalls  int
	// internal makes the item with this token fail with INTERNAL.
	internal string
	// keysDown makes Keys fail: the sidecar cannot be reached.
	keysDown bool
}

func newFake(primary *fernet.Key, old ...*fernet.Key) *fakeCrypter {
	return &fakeCrypter{keyring: fernet.NewKeyring(primary, old...)}
}

// setKeys replaces the keys, as the sidecar's reload does.
func (f *fakeCrypter) setKeys(primary *fernet.Key, old ...*fernet.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keyring = fernet.NewKeyring(primary, old...)
}

func (f *fakeCrypter) ring() *fernet.Keyring {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keyring
}

func (f *fakeCrypter) ReEncrypt(_ context.Context, tokens []string) ([]Encrypted, error) {
	f.mu.Lock()
	f.reencryptCalls++
	call, hook := f.reencryptCalls, f.beforeReEncrypt
	f.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	if err := sendable(tokens); err != nil {
		return nil, err
	}
	keyring := f.ring()
	out := make([]Encrypted, len(tokens))
	for i, tok := range tokens {
		if f.internal != "" && tok == f.internal {
			out[i] = Encrypted{Err: &ItemError{Reason: reasons.Internal, Message: "boom"}}
			continue
		}
		re, err := keyring.ReEncrypt(tok)
		if err != nil {
			out[i] = Encrypted{Err: &ItemError{Reason: reasons.Of(err), Message: err.Error()}}
			continue
		}
		out[i] = Encrypted{Token: re.Token, Changed: re.Changed}
	}
	return out, nil
}

func (f *fakeCrypter) Inspect(_ context.Context, tokens []string) ([]Inspected, error) {
	if err := sendable(tokens); err != nil {
		return nil, err
	}
	keyring := f.ring()
	out := make([]Inspected, len(tokens))
	for i, tok := range tokens {
		d, err := keyring.Decrypt(tok)
		if err != nil {
			out[i] = Inspected{Err: &ItemError{Reason: reasons.Of(err), Message: err.Error()}}
			continue
		}
		out[i] = Inspected{KeyID: d.KeyID}
	}
	return out, nil
}

func (f *fakeCrypter) Encrypt(_ context.Context, plaintexts [][]byte) ([]Encrypted, error) {
	keyring := f.ring()
	out := make([]Encrypted, len(plaintexts))
	for i, p := range plaintexts {
		e, err := keyring.Encrypt(p)
		if err != nil {
			return nil, err
		}
		out[i] = Encrypted{Token: e.Token, Changed: true}
	}
	return out, nil
}

// sendable fails as the sidecar's transport does on a token that is not
// UTF-8 (a proto string must be): the whole call, not the item.
func sendable(tokens []string) error {
	for _, tok := range tokens {
		if !utf8.ValidString(tok) {
			return errors.New("grpc: error while marshaling: string field contains invalid UTF-8")
		}
	}
	return nil
}

func (f *fakeCrypter) Keys(context.Context) (Keys, error) {
	f.mu.Lock()
	down := f.keysDown
	f.mu.Unlock()
	if down {
		return Keys{}, errors.New("sidecar unreachable")
	}
	keyring := f.ring()
	k := Keys{Primary: keyring.Primary().ID()}
	for _, old := range keyring.DecryptOnly() {
		k.DecryptOnly = append(k.DecryptOnly, old.ID())
	}
	return k, nil
}

// kinds are the databases every scenario runs against.
var kinds = []string{SQLite, Postgres, MySQL}

// freshDatabases returns a function that makes a new, empty database of
// the kind and returns its DSN, as Open takes it. A PostgreSQL or MariaDB
// server is started for t and stopped when t ends; without its binaries t
// ends as testenv.Missing says.
func freshDatabases(t *testing.T, kind string) func(t *testing.T) string {
	n := 0
	switch kind {
	case Postgres:
		pg := dbtest.StartPostgres(t)
		return func(t *testing.T) string {
			n++
			return pg.CreateDatabase(t, "job"+strconv.Itoa(n))
		}
	case MySQL:
		my := dbtest.StartMariaDB(t)
		return func(t *testing.T) string {
			n++
			name := "job" + strconv.Itoa(n)
			my.CreateDatabase(t, name)
			return "mysql://" + my.User + "@localhost/" + name + "?unix_socket=" + my.Socket
		}
	}
	return func(t *testing.T) string { return dbtest.SQLiteFile(t) }
}

// app is the application's own connection to the database.
type app struct {
	t    *testing.T
	kind string
	db   *sql.DB
}

func openApp(t *testing.T, kind, dsn string) *app {
	t.Helper()
	switch kind {
	case Postgres:
		return &app{t, kind, dbtest.OpenPostgres(t, dsn)}
	case MySQL:
		// The job's DSN, in the driver's own form.
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		return &app{t, kind, dbtest.OpenMariaDB(t, fmt.Sprintf("%s@unix(%s)%s", u.User.Username(), u.Query().Get("unix_socket"), u.Path))}
	}
	return &app{t, kind, dbtest.OpenSQLite(t, dsn)}
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (a *app) rebind(query string) string {
	if a.kind != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (a *app) exec(query string, args ...any) {
	a.t.Helper()
	if _, err := a.db.Exec(a.rebind(query), args...); err != nil {
		a.t.Fatalf("%s: %v", query, err)
	}
}

// value returns the column value of one row: nil for NULL.
func (a *app) value(table, pkCol string, pk any) any {
	a.t.Helper()
	var v any
	err := a.db.QueryRow(a.rebind(fmt.Sprintf("SELECT secret FROM %s WHERE %s = ?", table, pkCol)), pk).Scan(&v)
	if err != nil {
		a.t.Fatalf("reading %s %v: %v", table, pk, err)
	}
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// insert writes rows of (pk, secret) in one transaction.
func (a *app) insert(table string, pks []any, secrets []any) {
	a.t.Helper()
	tx, err := a.db.Begin()
	if err != nil {
		a.t.Fatal(err)
	}
	stmt, err := tx.Prepare(a.rebind(fmt.Sprintf("INSERT INTO %s VALUES (?, ?)", table)))
	if err != nil {
		a.t.Fatal(err)
	}
	for i := range pks {
		if _, err := stmt.Exec(pks[i], secrets[i]); err != nil {
			a.t.Fatal(err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		a.t.Fatal(err)
	}
}

// wantUnder fails unless token decrypts under key alone to plaintext at ts.
func wantUnder(t *testing.T, key *fernet.Key, token any, plaintext string, ts uint64, what string) {
	t.Helper()
	s, ok := token.(string)
	if !ok {
		t.Errorf("%s: holds %T %v, want a token", what, token, token)
		return
	}
	d, err := fernet.NewKeyring(key).Decrypt(s)
	if err != nil {
		t.Errorf("%s: does not decrypt under the primary key alone: %v", what, err)
		return
	}
	if string(d.Plaintext) != plaintext || d.Timestamp != ts {
		t.Errorf("%s: decrypts to %q at %d, want %q at %d", what, d.Plaintext, d.Timestamp, plaintext, ts)
	}
}

func openJobDB(t *testing.T, dsn string, readOnly bool) *Database {
	t.Helper()
	db, err := Open(dsn, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
