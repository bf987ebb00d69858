package rotation

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Every write is conditional on the row still holding the value that was
// read ("AND column = old"), so a row the app changed meanwhile is left
// as the app wrote it and reported back as a conflict. A batch is written
// with one statement (per writeChunk rows) in PostgreSQL and MySQL, where
// a statement per row costs a round trip each; SQLite runs in process, so
// a prepared statement per row costs it nothing more.

// writeChunk bounds the rows of one batched statement: MySQL allows 65535
// placeholders, and a statement of a few thousand rows is as fast per row
// as a larger one.
const writeChunk = 1000

// writeAll makes the writes in tx and returns the indexes of those whose
// row no longer held the value read.
func (q queries) writeAll(ctx context.Context, tx *sql.Tx, writes []write, pkName string) (conflicted []int, err error) {
	for start := 0; start < len(writes); start += writeChunk {
		chunk := writes[start:min(start+writeChunk, len(writes))]
		var written []bool
		switch q.db.Kind {
		case Postgres:
			written, err = q.writePostgres(ctx, tx, chunk)
		case MySQL:
			written, err = q.writeMySQL(ctx, tx, chunk)
		default:
			written, err = q.writeEach(ctx, tx, chunk)
		}
		if err == errNotUnique {
			return nil, fmt.Errorf("%s is not unique: a key matched several rows (the batch was rolled back)", pkName)
		}
		if tooLong(err) {
			return nil, fmt.Errorf("the token column is too short for the new tokens: %d characters needed; widen it (the batch was rolled back): %w",
				longestToken(chunk), err)
		}
		if err != nil {
			return nil, fmt.Errorf("updating a batch (it was rolled back): %w", err)
		}
		for i, ok := range written {
			if !ok {
				conflicted = append(conflicted, start+i)
			}
		}
	}
	return conflicted, nil
}

var errNotUnique = fmt.Errorf("primary key not unique")

// tooLong reports whether err is the database refusing a value longer
// than its column (SQLSTATE 22001, string data right truncation). The
// databases' messages name the column or its type, never the value.
func tooLong(err error) bool {
	var my *mysql.MySQLError
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &my):
		return string(my.SQLState[:]) == "22001"
	case errors.As(err, &pg):
		return pg.Code == "22001"
	}
	return false
}

// longestToken is the length of the longest new token in writes.
func longestToken(writes []write) int {
	n := 0
	for _, w := range writes {
		n = max(n, len(w.token))
	}
	return n
}

// writePostgres is one UPDATE ... FROM unnest(arrays): three parameters
// whatever the batch size, and RETURNING names the rows it changed.
func (q queries) writePostgres(ctx context.Context, tx *sql.Tx, writes []write) ([]bool, error) {
	pks := make([]string, len(writes))
	var news, olds any
	if writes[0].row.val.bytes {
		n, o := make([][]byte, len(writes)), make([][]byte, len(writes))
		for i, w := range writes {
			n[i], o[i] = []byte(w.token), []byte(w.row.val.text)
		}
		news, olds = n, o
	} else {
		n, o := make([]string, len(writes)), make([]string, len(writes))
		for i, w := range writes {
			n[i], o[i] = w.token, w.row.val.text
		}
		news, olds = n, o
	}
	for i, w := range writes {
		pks[i] = w.row.pk.postgresText()
	}
	array := "text[]"
	if writes[0].row.val.bytes {
		array = "bytea[]"
	}
	// The key goes as text and is cast to the column's type on our side
	// of the join, so that the primary-key index serves it.
	stmt := fmt.Sprintf(`UPDATE %s AS t SET %s = v.new
		FROM unnest($1::text[], $2::%s, $3::%s) WITH ORDINALITY AS v(pk, new, old, i)
		WHERE t.%s = v.pk::%s AND t.%s = v.old RETURNING v.i`,
		q.table, q.column, array, array, q.pk, q.pkType, q.column)
	rows, err := tx.QueryContext(ctx, stmt, pks, news, olds)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	written := make([]bool, len(writes))
	for rows.Next() {
		var i int
		if err := rows.Scan(&i); err != nil {
			return nil, err
		}
		if written[i-1] {
			return nil, errNotUnique
		}
		written[i-1] = true
	}
	return written, rows.Err()
}

// postgresText is the key as PostgreSQL's text input takes it.
func (v Value) postgresText() string {
	switch v := v.v.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return v
	case []byte:
		return `\x` + hex.EncodeToString(v)
	}
	return ""
}

// writeMySQL is one UPDATE ... JOIN over the batch as a derived table.
// MySQL's UPDATE has no RETURNING, so the rows are read back in the same
// transaction, which holds their locks: a row holds our new token if and
// only if our write reached it (a token is never made twice).
func (q queries) writeMySQL(ctx context.Context, tx *sql.Tx, writes []write) ([]bool, error) {
	// Bytes must be cast, or the derived table's column takes the
	// connection's character set and refuses bytes that are not text.
	pk, token := "?", "?"
	if _, isBytes := writes[0].row.pk.v.([]byte); isBytes {
		pk = "CAST(? AS BINARY)"
	}
	if writes[0].row.val.bytes {
		token = "CAST(? AS BINARY)"
	}
	var values strings.Builder
	args := make([]any, 0, 3*len(writes))
	for i, w := range writes {
		if i == 0 {
			fmt.Fprintf(&values, "SELECT %s AS pk, %s AS new, %s AS old", pk, token, token)
		} else {
			fmt.Fprintf(&values, " UNION ALL SELECT %s, %s, %s", pk, token, token)
		}
		args = append(args, w.row.pk.v, w.row.val.arg(w.token), w.row.val.arg(w.row.val.text))
	}
	// BINARY: the check is on the exact bytes, whatever the column's
	// collation; a case-insensitive one would take "abc" for "ABC".
	stmt := fmt.Sprintf("UPDATE %s AS t JOIN (%s) AS v ON t.%s = v.pk AND BINARY t.%s = BINARY v.old SET t.%s = v.new",
		q.table, values.String(), q.pk, q.column, q.column)
	if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
		return nil, err
	}

	in := strings.TrimSuffix(strings.Repeat("?, ", len(writes)), ", ")
	keys := make([]any, len(writes))
	index := make(map[string]int, len(writes))
	for i, w := range writes {
		keys[i] = w.row.pk.v
		index[w.row.pk.String()] = i
	}
	rows, err := tx.QueryContext(ctx, fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s IN (%s)", q.pk, q.column, q.table, q.pk, in), keys...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	written := make([]bool, len(writes))
	seen := make([]bool, len(writes))
	for rows.Next() {
		r, err := scanRow(rows, q.db, types)
		if err != nil {
			return nil, err
		}
		i, ok := index[r.pk.String()]
		if !ok {
			// The app changed the key's case under a case-insensitive
			// collation. Counted as a conflict, the row is read again.
			continue
		}
		if seen[i] {
			return nil, errNotUnique
		}
		seen[i] = true
		written[i] = !r.val.null && r.val.text == writes[i].token
	}
	return written, rows.Err()
}

// writeEach is one prepared UPDATE per row.
func (q queries) writeEach(ctx context.Context, tx *sql.Tx, writes []write) ([]bool, error) {
	stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s = ? AND %s = ?", q.table, q.column, q.pk, q.column))
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	written := make([]bool, len(writes))
	for i, w := range writes {
		res, err := stmt.ExecContext(ctx, w.row.val.arg(w.token), w.row.pk.v, w.row.val.arg(w.row.val.text))
		if err != nil {
			return nil, fmt.Errorf("row %s: %w", w.row.pk, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("row %s: %w", w.row.pk, err)
		}
		if n > 1 {
			return nil, errNotUnique
		}
		written[i] = n == 1
	}
	return written, nil
}
