package rotation

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// keyType is a primary-key column type and how to make its values.
type keyType struct {
	sql   string
	value func(i int) any
}

func intKey(i int) any { return int64(i*7 - 100) } // negative keys too
func uuidKey(i int) any {
	s := sha256.Sum256([]byte(fmt.Sprint(i)))
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
func binaryKey(i int) any { s := sha256.Sum256([]byte(fmt.Sprint(i))); return s[:16] }
func textKey(i int) any   { return fmt.Sprintf("User-%03d", (i*37)%1000) }

// keyTypes are the primary-key types each database is tested with.
var keyTypes = map[string]map[string]keyType{
	SQLite: {
		"integer": {"INTEGER", intKey},
		"bigint":  {"BIGINT", intKey},
		"text":    {"TEXT", textKey},
		"uuid":    {"TEXT", uuidKey},
		"blob":    {"BLOB", binaryKey},
	},
	Postgres: {
		"integer": {"INTEGER", intKey},
		"bigint":  {"BIGINT", intKey},
		"text":    {"TEXT", textKey},
		"varchar": {"VARCHAR(64)", textKey},
		"uuid":    {"UUID", uuidKey},
		"bytea":   {"BYTEA", binaryKey},
	},
	MySQL: {
		"int":        {"INT", intKey},
		"bigint":     {"BIGINT", intKey},
		"varchar":    {"VARCHAR(64)", textKey},
		"char36":     {"CHAR(36)", uuidKey},
		"binary16":   {"BINARY(16)", binaryKey},
		"bigint uns": {"BIGINT UNSIGNED", func(i int) any { return int64(i) }},
	},
}

// TestKeyTypes rotates a table keyed by each type, stopping mid-way and
// resuming, so the checkpoint stores and gives back each type's keys.
func TestKeyTypes(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			fresh := freshDatabases(t, kind)
			for name, kt := range keyTypes[kind] {
				t.Run(name, func(t *testing.T) { testKeyType(t, kind, fresh(t), kt) })
			}
		})
	}
}

func testKeyType(t *testing.T, kind, dsn string, kt keyType) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE k (id " + kt.sql + " PRIMARY KEY, secret TEXT)")
	const n = 25
	var pks, vals []any
	for i := range n {
		pks, vals = append(pks, kt.value(i)), append(vals, testkeys.Token(t, old, fmt.Sprint("s-", i), baseTS+uint64(i)))
	}
	a.insert("k", pks, vals)
	cp := &Checkpoint{Path: filepath.Join(t.TempDir(), "state.json")}
	interrupt := make(chan struct{})
	job := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "k", PK: "id", Column: "secret", BatchSize: 4,
		Checkpoint: cp, Interrupt: interrupt}
	job.Progress = func(p Progress) {
		if p.Done == 8 {
			close(interrupt)
		}
	}
	if _, err := job.Run(context.Background()); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted", err)
	}
	job.Interrupt, job.Progress = nil, nil
	r := run(t, job)
	if r.Scanned != n-8 || r.Rewritten != n-8 || r.BeforeCheckpoint == nil || r.BeforeCheckpoint.Scanned != 8 || r.Remaining() != 0 {
		t.Errorf("resumed: scanned %d rewritten %d remaining %d, before the checkpoint %+v; want %d %d 0 and 8", r.Scanned, r.Rewritten, r.Remaining(), r.BeforeCheckpoint, n-8, n-8)
	}
	for i, pk := range pks {
		wantUnder(t, primary, a.value("k", "id", pk), fmt.Sprint("s-", i), baseTS+uint64(i), fmt.Sprintf("row %v", pk))
	}
}

// TestShards runs n shards of one table at once, for n = 1, 3 and 8: each
// row must be scanned and rewritten by exactly one of them.
func TestShards(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			fresh := freshDatabases(t, kind)
			keys := map[string]keyType{"bigint": keyTypes[kind]["bigint"]}
			switch kind {
			case Postgres:
				keys["uuid"] = keyTypes[kind]["uuid"]
			case MySQL:
				keys["char36"] = keyTypes[kind]["char36"]
			}
			for name, kt := range keys {
				for _, n := range []int{1, 3, 8} {
					t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) { testShards(t, kind, fresh(t), kt, n) })
				}
			}
		})
	}
	t.Run("sqlite text keys refused", func(t *testing.T) {
		dsn := dbtest.SQLiteFile(t)
		a := openApp(t, SQLite, dsn)
		a.exec("CREATE TABLE k (id TEXT PRIMARY KEY, secret TEXT)")
		_, err := (&Job{DB: openJobDB(t, dsn, false), Crypter: newFake(testkeys.New(t)), Table: "k", PK: "id", Column: "secret", Shard: Shard{1, 2}}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "integer primary key") {
			t.Errorf("Run = %v, want --shard refused for a SQLite text key", err)
		}
	})
}

func testShards(t *testing.T, kind, dsn string, kt keyType, n int) {
	primary, old := testkeys.New(t), testkeys.New(t)
	a := openApp(t, kind, dsn)
	a.exec("CREATE TABLE k (id " + kt.sql + " PRIMARY KEY, secret TEXT)")
	const rows = 400
	var pks, vals []any
	for i := range rows {
		pks, vals = append(pks, kt.value(i)), append(vals, testkeys.Token(t, old, fmt.Sprint("s-", i), baseTS+uint64(i)))
	}
	a.insert("k", pks, vals)
	dir := t.TempDir()
	reports := make([]*Report, n)
	var wg sync.WaitGroup
	for i := range n {
		job := &Job{DB: openJobDB(t, dsn, false), Crypter: newFake(primary, old), Table: "k", PK: "id", Column: "secret", BatchSize: 16,
			Shard: Shard{i, n}, Checkpoint: &Checkpoint{Path: filepath.Join(dir, fmt.Sprint(i))}}
		wg.Go(func() {
			r, err := job.Run(context.Background())
			if err != nil {
				t.Errorf("shard %d/%d: %v", i, n, err)
			}
			reports[i] = r
		})
	}
	wg.Wait()
	var scanned, rewritten, conflicts int64
	for i, r := range reports {
		if r == nil {
			return
		}
		if n > 1 && (r.Scanned == 0 || r.Scanned == rows) {
			t.Errorf("shard %d/%d scanned %d of %d rows: the parts are lopsided", i, n, r.Scanned, rows)
		}
		scanned, rewritten, conflicts = scanned+r.Scanned, rewritten+r.Rewritten, conflicts+r.Conflicts
	}
	// Parts that overlapped would scan a row twice, and the later write
	// would find the row changed (a conflict); parts that left a gap
	// would leave a row under the old key.
	if scanned != rows || rewritten != rows || conflicts != 0 {
		t.Errorf("%d shards scanned %d, rewrote %d, conflicted %d; want %d %d 0", n, scanned, rewritten, conflicts, rows, rows)
	}
	for i, pk := range pks {
		wantUnder(t, primary, a.value("k", "id", pk), fmt.Sprint("s-", i), baseTS+uint64(i), fmt.Sprintf("row %v", pk))
	}
}
