package rotation

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers "sqlite": pure Go, so the binary builds with CGO_ENABLED=0
)

// Database is an open database and the SQL dialect it speaks.
type Database struct {
	SQL *sql.DB
	// Kind is "postgres" or "sqlite".
	Kind string
	// identity names the database without its password, so that a
	// checkpoint is never resumed against another database.
	identity string
}

// Close closes the connection pool.
func (d *Database) Close() error { return d.SQL.Close() }

// Open opens the database a DSN names. The driver follows from its form:
//
//	postgres://... or postgresql://...     PostgreSQL (pgx)
//	sqlite:PATH or sqlite:///PATH          SQLite file (the second is dj-database-url's form)
//	file:PATH[?params]                     SQLite URI, passed on as it is
//	PATH ending .sqlite3, .sqlite or .db   SQLite file
//
// A SQLite file must already exist: it is opened with mode=rw, so a typo
// fails instead of creating an empty database. readOnly makes the
// connections refuse writes (query_only, default_transaction_read_only),
// for --check and --dry-run.
func Open(dsn string, readOnly bool) (*Database, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(dsn, readOnly)
	case strings.HasPrefix(dsn, "sqlite:///"):
		return openSQLiteFile(strings.TrimPrefix(dsn, "sqlite:///"), readOnly)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLiteFile(strings.TrimPrefix(dsn, "sqlite:"), readOnly)
	case strings.HasPrefix(dsn, "file:"):
		return openSQLite(dsn, dsn, readOnly)
	case strings.HasSuffix(dsn, ".sqlite3"), strings.HasSuffix(dsn, ".sqlite"), strings.HasSuffix(dsn, ".db"):
		return openSQLiteFile(dsn, readOnly)
	}
	return nil, errors.New("cannot tell the database from the DSN: use postgres://..., sqlite:PATH, file:PATH, or a path ending .sqlite3, .sqlite or .db")
}

func openPostgres(dsn string, readOnly bool) (*Database, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("invalid PostgreSQL DSN")
	}
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	identity := fmt.Sprintf("postgres %s:%d/%s as %s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
	return &Database{SQL: db, Kind: "postgres", identity: identity}, nil
}

func openSQLiteFile(path string, readOnly bool) (*Database, error) {
	if path == "" {
		return nil, errors.New("the SQLite DSN names no file")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("SQLite database: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// SQLite's URI syntax gives '?', '#' and '%' meanings; escape them.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs)
	return openSQLite("file:"+escaped+"?mode=rw", abs, readOnly)
}

func openSQLite(uri, identity string, readOnly bool) (*Database, error) {
	// busy_timeout: the app writes to the same file meanwhile, and a locked
	// database should be waited for, not reported. _txlock=immediate: a
	// batch transaction takes the write lock when it begins, so it can not
	// fail half-way with SQLITE_BUSY when upgrading a read lock.
	params := []string{"_busy_timeout=10000", "_txlock=immediate"}
	if readOnly {
		params = append(params, "_query_only=1")
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	for _, p := range params {
		key, _, _ := strings.Cut(p, "=")
		if !strings.Contains(uri, key+"=") {
			uri += sep + p
			sep = "&"
		}
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(identity, "file:") {
		identity, _, _ = strings.Cut(identity, "?")
	}
	return &Database{SQL: db, Kind: "sqlite", identity: "sqlite " + identity}, nil
}

// Fingerprint is a short hash of the database's identity, stored in the
// checkpoint.
func (d *Database) Fingerprint() string {
	sum := sha256.Sum256([]byte(d.identity))
	return hex.EncodeToString(sum[:8])
}

// placeholder is the n-th (1-based) query parameter.
func (d *Database) placeholder(n int) string {
	if d.Kind == "postgres" {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// identifierPattern is what a table or column name may be: a plain SQL
// identifier, optionally schema-qualified. Anything else is refused rather
// than escaped, because these names come from a command line.
var identifierPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// quoteIdentifier validates name and double-quotes each part, which both
// PostgreSQL and SQLite read as an identifier. Quoting keeps the case as
// given, so in PostgreSQL "Foo" and "foo" differ.
func quoteIdentifier(what, name string) (string, error) {
	if !identifierPattern.MatchString(name) {
		return "", fmt.Errorf("%s %q is not a plain SQL identifier (letters, digits and _, optionally schema.name)", what, name)
	}
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + p + `"`
	}
	return strings.Join(parts, "."), nil
}

// queries are the statements of one job, built once.
type queries struct {
	first, next  string // a batch from the start, and after a primary key
	count, after string // rows to do, from the start and after a primary key
	reread       string // one row again, after a conflict
	update       string // the optimistic write
}

func buildQueries(db *Database, table, pk, column, where string) (queries, error) {
	t, err := quoteIdentifier("table", table)
	if err != nil {
		return queries{}, err
	}
	p, err := quoteIdentifier("primary-key column", pk)
	if err != nil {
		return queries{}, err
	}
	if strings.Contains(pk, ".") {
		return queries{}, fmt.Errorf("primary-key column %q must not be qualified", pk)
	}
	c, err := quoteIdentifier("token column", column)
	if err != nil {
		return queries{}, err
	}
	if strings.Contains(column, ".") {
		return queries{}, fmt.Errorf("token column %q must not be qualified", column)
	}
	if p == c {
		return queries{}, errors.New("the primary-key column and the token column must differ")
	}
	// --where is the operator's own SQL, ANDed in. The newlines keep a
	// trailing "-- comment" in it from swallowing the rest of the query.
	filter := ""
	if strings.TrimSpace(where) != "" {
		filter = "(\n" + where + "\n) AND "
	}
	ph := db.placeholder
	q := queries{
		// NULL primary keys (possible in SQLite) can be neither ordered nor
		// resumed from, so they are left out.
		first: fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s%s IS NOT NULL ORDER BY %s LIMIT %s", p, c, t, filter, p, p, ph(1)),
		next:  fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s%s > %s ORDER BY %s LIMIT %s", p, c, t, filter, p, ph(1), p, ph(2)),
		count: fmt.Sprintf("SELECT count(*) FROM %s WHERE %s%s IS NOT NULL", t, filter, p),
		after: fmt.Sprintf("SELECT count(*) FROM %s WHERE %s%s > %s", t, filter, p, ph(1)),
		// The filter applies to the re-read too: a row the app moved out of
		// the operator's selection is no longer ours to touch.
		reread: fmt.Sprintf("SELECT %s FROM %s WHERE %s%s = %s", c, t, filter, p, ph(1)),
		// "AND column = old" is the optimistic check: if the app wrote the
		// row after we read it, nothing is updated and we re-read it.
		update: fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s AND %s = %s", t, c, ph(1), p, ph(2), c, ph(3)),
	}
	return q, nil
}

// Value is a primary-key value as the driver returns it: int64 for integer
// keys, string for text (and, from pgx, uuid) keys, []byte for blobs. It is
// passed back to the driver as it came, so comparisons keep the column's
// own type and ordering.
type Value struct {
	v any
}

func pkValue(v any) (Value, error) {
	switch v := v.(type) {
	case int64, string:
		return Value{v}, nil
	case []byte:
		return Value{append([]byte(nil), v...)}, nil
	case nil:
		return Value{}, errors.New("a row has a NULL primary key")
	}
	return Value{}, fmt.Errorf("primary keys of Go type %T are not supported: use an integer or text column", v)
}

// String is the value for reports: integers plain, text quoted.
func (v Value) String() string {
	switch v := v.v.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return strconv.Quote(v)
	case []byte:
		return "x'" + hex.EncodeToString(v) + "'"
	}
	return "<none>"
}

// IsZero reports whether v holds no value.
func (v Value) IsZero() bool { return v.v == nil }

// IntValue is an integer primary-key value.
func IntValue(n int64) Value { return Value{n} }

// cell is a token column value as read: its text, and whether the driver
// gave it as bytes (bytea, blob), in which case it is written back as bytes
// so that the column keeps its type.
type cell struct {
	null  bool
	text  string
	bytes bool
}

func cellValue(v any) (cell, error) {
	switch v := v.(type) {
	case nil:
		return cell{null: true}, nil
	case string:
		return cell{text: v}, nil
	case []byte:
		return cell{text: string(v), bytes: true}, nil
	}
	return cell{}, fmt.Errorf("token column holds a %T, want text", v)
}

// arg is the value to pass for this cell's column in a query.
func (c cell) arg(text string) any {
	if c.bytes {
		return []byte(text)
	}
	return text
}

// String names the database for messages, without any password.
func (d *Database) String() string { return d.identity }
