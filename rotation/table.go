package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// column is one column of the table, as its catalog declares it.
type column struct {
	name, typ string
	primary   bool // part of the table's primary key
	// unique is true when a unique index (or constraint) covers this
	// column alone, and all of the table's rows: keyset paging by a
	// column that is not unique skips the rows sharing a value across a
	// batch boundary.
	unique bool
}

// describe reads the table's columns from the database's catalog, so that
// a wrong name, a --pk that is not unique or a key type the job cannot
// shard fails before anything is read.
func describe(ctx context.Context, db *Database, table string) ([]column, error) {
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		schema, name = "", table
	}
	var query string
	var args []any
	switch db.Kind {
	case Postgres:
		quoted, _ := db.quoteIdentifier("table", table) // checked by buildQueries
		// A unique index counts if it is valid (a failed CREATE INDEX
		// CONCURRENTLY leaves an invalid one), whole (no WHERE) and on
		// this one column (INCLUDE columns aside).
		query = `SELECT a.attname, format_type(a.atttypid, a.atttypmod),
			EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey)),
			EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid
				AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL AND i.indexprs IS NULL)
			FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
		args = []any{quoted}
	case MySQL:
		// A unique index counts if it has no second column.
		query = `SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_KEY = 'PRI',
			EXISTS (SELECT 1 FROM information_schema.STATISTICS s
				WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME AND s.COLUMN_NAME = c.COLUMN_NAME AND s.NON_UNIQUE = 0
				AND NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS o
					WHERE o.TABLE_SCHEMA = s.TABLE_SCHEMA AND o.TABLE_NAME = s.TABLE_NAME AND o.INDEX_NAME = s.INDEX_NAME AND o.SEQ_IN_INDEX > 1))
			FROM information_schema.COLUMNS c
			WHERE c.TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION`
		args = []any{schema, name}
	default:
		if schema == "" {
			schema = "main"
		}
		// A unique index counts if it is whole (not partial) and on this
		// one column. An INTEGER PRIMARY KEY (the rowid) has no index;
		// checkColumns counts a single-column primary key as unique.
		query = `SELECT t.name, t.type, t.pk > 0,
			EXISTS (SELECT 1 FROM pragma_index_list(?1, ?2) l WHERE l."unique" AND NOT l.partial
				AND (SELECT count(*) FROM pragma_index_info(l.name, ?2)) = 1
				AND (SELECT i.name FROM pragma_index_info(l.name, ?2) i) = t.name)
			FROM pragma_table_info(?1, ?2) t ORDER BY t.cid`
		args = []any{name, schema}
	}
	rows, err := db.SQL.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		var typ []byte // MySQL's information_schema gives some text as bytes
		if err := rows.Scan(&c.name, &typ, &c.primary, &c.unique); err != nil {
			return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
		}
		c.typ = strings.ToLower(string(typ))
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s not found", table)
	}
	return cols, nil
}

// checkColumns finds pk and token among cols and refuses what the job
// cannot walk: a missing column, a pk that is one part of a composite
// primary key, or any other pk that no unique index covers alone. It
// returns pk's type.
func checkColumns(db *Database, table string, cols []column, pk, token string) (pkType string, err error) {
	// PostgreSQL's quoted names are case-sensitive; MySQL's and SQLite's
	// column names are not.
	same := strings.EqualFold
	if db.Kind == Postgres {
		same = func(a, b string) bool { return a == b }
	}
	find := func(name string) *column {
		for i := range cols {
			if same(cols[i].name, name) {
				return &cols[i]
			}
		}
		return nil
	}
	if find(token) == nil {
		return "", fmt.Errorf("table %s has no column %q", table, token)
	}
	p := find(pk)
	if p == nil {
		return "", fmt.Errorf("table %s has no column %q (--pk)", table, pk)
	}
	var key []string
	for _, c := range cols {
		if c.primary {
			key = append(key, c.name)
		}
	}
	if len(key) > 1 && p.primary {
		return "", fmt.Errorf("table %s has a composite primary key (%s): composite keys are not supported; "+
			"give --pk a column that is unique on its own", table, strings.Join(key, ", "))
	}
	if !p.unique && !(p.primary && len(key) == 1) {
		return "", fmt.Errorf("column %q of table %s is not unique on its own: --pk must be the table's primary key "+
			"or a column with a unique index of its own, or rows sharing a value would be skipped", p.name, table)
	}
	return p.typ, nil
}

// isIntegerType reports whether a declared column type holds integers.
func isIntegerType(kind, typ string) bool {
	switch kind {
	case Postgres:
		return slices.Contains([]string{"smallint", "integer", "bigint"}, typ)
	case MySQL:
		return slices.Contains([]string{"tinyint", "smallint", "mediumint", "int", "bigint"}, typ)
	}
	// SQLite's rule for a column's affinity.
	return strings.Contains(typ, "int")
}

// Shard is one part of a table split n ways by primary key, for runs
// side by side: part Index (0-based) of Count. Every row belongs to
// exactly one part, decided by its key alone (an integer key modulo Count,
// a hash of any other key), so parts never overlap and together cover the
// table, however the table changes while they run.
type Shard struct {
	Index, Count int
}

// String is "i/n", as --shard takes it.
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "i/n" with 0 <= i < n.
func ParseShard(s string) (Shard, error) {
	var sh Shard
	var rest string
	if n, _ := fmt.Sscanf(s, "%d/%d%s", &sh.Index, &sh.Count, &rest); n != 2 || sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 0 <= i < n, e.g. 0/4", s)
	}
	return sh, nil
}

// condition is the SQL that selects the shard's rows, ANDed into every
// query; "" for the whole table.
func (s Shard) condition(kind, pk, pkType string) (string, error) {
	if s.Count <= 1 {
		return "", nil
	}
	i, n := s.Index, s.Count
	if isIntegerType(kind, pkType) {
		// Modulo, made non-negative for negative keys.
		return fmt.Sprintf("((%s %% %d) + %d) %% %d = %d", pk, n, n, n, i), nil
	}
	switch kind {
	case Postgres:
		// hashtext: PostgreSQL's own string hash, stable for a server.
		return fmt.Sprintf("((hashtext(%s::text)::bigint %% %d) + %d) %% %d = %d", pk, n, n, n, i), nil
	case MySQL:
		return fmt.Sprintf("CRC32(%s) %% %d = %d", pk, n, i), nil
	}
	return "", errors.New("--shard on SQLite needs an integer primary key (SQLite has one writer, so shards gain little there anyway)")
}
