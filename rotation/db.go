package rotation

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers "sqlite": pure Go, so the binary builds with CGO_ENABLED=0
)

// The database kinds, Database.Kind.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
	MySQL    = "mysql" // MySQL and MariaDB
)

// Database is an open database and the SQL dialect it speaks.
type Database struct {
	SQL *sql.DB
	// Kind is Postgres, SQLite or MySQL.
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
//	mysql://... and dj-database-url's kin   MySQL or MariaDB (see openMySQL)
//	sqlite:PATH or sqlite:///PATH          SQLite file (the second is dj-database-url's form)
//	file:PATH[?params]                     SQLite URI, passed on as it is
//	PATH ending .sqlite3, .sqlite or .db   SQLite file
//
// A SQLite file must already exist: it is opened with mode=rw, so a typo
// fails instead of creating an empty database. readOnly makes the
// connections refuse writes (query_only, default_transaction_read_only,
// SET SESSION TRANSACTION READ ONLY), for --check and --dry-run.
func Open(dsn string, readOnly bool) (*Database, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(dsn, readOnly)
	case isMySQLURL(dsn):
		return openMySQL(dsn, readOnly)
	case strings.HasPrefix(dsn, "sqlite:///"):
		return openSQLiteFile(strings.TrimPrefix(dsn, "sqlite:///"), readOnly)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLiteFile(strings.TrimPrefix(dsn, "sqlite:"), readOnly)
	case strings.HasPrefix(dsn, "file:"):
		return openSQLite(dsn, dsn, readOnly)
	case strings.HasSuffix(dsn, ".sqlite3"), strings.HasSuffix(dsn, ".sqlite"), strings.HasSuffix(dsn, ".db"):
		return openSQLiteFile(dsn, readOnly)
	}
	return nil, errors.New("cannot tell the database from the DSN: use postgres://..., mysql://..., sqlite:PATH, file:PATH, or a path ending .sqlite3, .sqlite or .db")
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
	return &Database{SQL: db, Kind: Postgres, identity: identity}, nil
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
	return &Database{SQL: db, Kind: SQLite, identity: "sqlite " + identity}, nil
}

// Fingerprint is a short hash of the database's identity, stored in the
// checkpoint.
func (d *Database) Fingerprint() string {
	sum := sha256.Sum256([]byte(d.identity))
	return hex.EncodeToString(sum[:8])
}

// placeholder is the n-th (1-based) query parameter.
func (d *Database) placeholder(n int) string {
	if d.Kind == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// identifierPattern is what a table or column name may be: a plain SQL
// identifier, optionally schema-qualified. Anything else is refused rather
// than escaped, because these names come from a command line.
var identifierPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// quoteIdentifier validates name and quotes each part: in double quotes,
// which PostgreSQL and SQLite read as an identifier, or in backquotes for
// MySQL, whose double quotes make a string unless ANSI_QUOTES is on.
// Quoting keeps the case as given, so in PostgreSQL "Foo" and "foo" differ.
func (d *Database) quoteIdentifier(what, name string) (string, error) {
	if !identifierPattern.MatchString(name) {
		return "", fmt.Errorf("%s %q is not a plain SQL identifier (letters, digits and _, optionally schema.name)", what, name)
	}
	quote := `"`
	if d.Kind == MySQL {
		quote = "`"
	}
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = quote + p + quote
	}
	return strings.Join(parts, "."), nil
}

// queries builds the statements of one job from its quoted names.
type queries struct {
	db                *Database
	table, pk, column string // quoted
	// filter is --where and the shard's condition, each followed by AND,
	// or "".
	filter string
	// pkType is the primary-key column's type, as the database declares
	// it (PostgreSQL's format_type), for casts in the batched UPDATE.
	pkType string
}

func buildQueries(db *Database, table, pk, column, where string) (queries, error) {
	t, err := db.quoteIdentifier("table", table)
	if err != nil {
		return queries{}, err
	}
	if strings.Contains(pk, ",") {
		return queries{}, fmt.Errorf("--pk %q names several columns: composite primary keys are not supported; give one unique column", pk)
	}
	p, err := db.quoteIdentifier("primary-key column", pk)
	if err != nil {
		return queries{}, err
	}
	if strings.Contains(pk, ".") {
		return queries{}, fmt.Errorf("primary-key column %q must not be qualified", pk)
	}
	c, err := db.quoteIdentifier("token column", column)
	if err != nil {
		return queries{}, err
	}
	if strings.Contains(column, ".") {
		return queries{}, fmt.Errorf("token column %q must not be qualified", column)
	}
	if strings.EqualFold(p, c) {
		return queries{}, errors.New("the primary-key column and the token column must differ")
	}
	q := queries{db: db, table: t, pk: p, column: c}
	// --where is the operator's own SQL, ANDed in. The newlines keep a
	// trailing "-- comment" in it from swallowing the rest of the query.
	if strings.TrimSpace(where) != "" {
		q.filter = "(\n" + where + "\n) AND "
	}
	return q, nil
}

// bounds are the primary-key limits of a read or a count: rows after
// lower and up to upper, each when set.
type bounds struct {
	lower, upper Value
}

// where is the WHERE clause of a walk within b, and its arguments, with
// placeholders numbered from 1.
func (q queries) where(b bounds) (string, []any) {
	// NULL primary keys (possible in SQLite) can be neither ordered nor
	// resumed from, so they are left out.
	clause := q.filter + q.pk + " IS NOT NULL"
	var args []any
	if !b.lower.IsZero() {
		args = append(args, b.lower.v)
		clause += " AND " + q.pk + " > " + q.db.placeholder(len(args))
	}
	if !b.upper.IsZero() {
		args = append(args, b.upper.v)
		clause += " AND " + q.pk + " <= " + q.db.placeholder(len(args))
	}
	return clause, args
}

// read is the next batch within b, in primary-key order (keyset
// pagination, never OFFSET).
func (q queries) read(b bounds, limit int) (string, []any) {
	clause, args := q.where(b)
	args = append(args, limit)
	return fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s ORDER BY %s LIMIT %s",
		q.pk, q.column, q.table, clause, q.pk, q.db.placeholder(len(args))), args
}

// count is the number of rows within b.
func (q queries) count(b bounds) (string, []any) {
	clause, args := q.where(b)
	return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", q.table, clause), args
}

// reread is one row again, after a conflict. The filter applies to it
// too: a row the app moved out of the operator's selection is no longer
// ours to touch.
func (q queries) reread() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s%s = %s", q.column, q.table, q.filter, q.pk, q.db.placeholder(1))
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
	case uint64: // MySQL's BIGINT UNSIGNED
		if v > math.MaxInt64 {
			return Value{}, fmt.Errorf("primary key %d is over 2^63-1", v)
		}
		return Value{int64(v)}, nil
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

// textOf is v with MySQL's text columns as strings: its driver gives every
// string as bytes, and only the column's type tells text from binary.
func (d *Database) textOf(v any, ct *sql.ColumnType) any {
	b, isBytes := v.([]byte)
	if d.Kind != MySQL || !isBytes {
		return v
	}
	switch ct.DatabaseTypeName() {
	case "BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB":
		return v
	}
	return string(b)
}

// token is the cell's value as the token to send to the sidecar. Bytes
// are read as Python's Fernet reads a bytes token, whose base64 decoding
// skips every byte outside its alphabet, non-ASCII included (the Python
// client sends token.decode("ascii", "ignore")): the non-ASCII bytes are
// dropped. Sent as they are, one byte that is not UTF-8 would fail every
// batch call it is in, since a proto string must be UTF-8.
func (c cell) token() string {
	if !c.bytes {
		return c.text
	}
	ascii := make([]byte, 0, len(c.text))
	for i := 0; i < len(c.text); i++ {
		if c.text[i] < utf8.RuneSelf {
			ascii = append(ascii, c.text[i])
		}
	}
	return string(ascii)
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
