package rotation

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestQuoteIdentifier(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"otp_totp_totpdevice", `"otp_totp_totpdevice"`},
		{"public.accounts_user", `"public"."accounts_user"`},
		{"_x1", `"_x1"`},
		{"Key", `"Key"`},
		{"", ""},
		{"a;b", ""},
		{`a"b`, ""},
		{"a.b.c", ""},
		{"1abc", ""},
		{"a b", ""},
		{"a-b", ""},
		{"a.", ""},
		{"ключ", ""},
	} {
		got, err := (&Database{Kind: SQLite}).quoteIdentifier("table", tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("quoteIdentifier(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestBuildQueries(t *testing.T) {
	pg := &Database{Kind: Postgres}
	q, err := buildQueries(pg, "public.otp", "id", "key", "confirmed -- a comment")
	if err != nil {
		t.Fatal(err)
	}
	next, args := q.read(bounds{lower: IntValue(7)}, 100)
	wantNext := `SELECT "id", "key" FROM "public"."otp" WHERE (` + "\nconfirmed -- a comment\n" + `) AND "id" IS NOT NULL AND "id" > $1 ORDER BY "id" LIMIT $2`
	if next != wantNext || !reflect.DeepEqual(args, []any{int64(7), 100}) {
		t.Errorf("next =\n%s %v\nwant\n%s", next, args, wantNext)
	}
	count, args := q.count(bounds{upper: IntValue(9)})
	if want := `SELECT count(*) FROM "public"."otp" WHERE (` + "\nconfirmed -- a comment\n" + `) AND "id" IS NOT NULL AND "id" <= $1`; count != want || len(args) != 1 {
		t.Errorf("count = %s %v, want %s", count, args, want)
	}
	my := &Database{Kind: MySQL}
	q, _ = buildQueries(my, "app.otp", "id", "key", "")
	if next, _ := q.read(bounds{lower: IntValue(1), upper: IntValue(9)}, 10); next != "SELECT `id`, `key` FROM `app`.`otp` WHERE `id` IS NOT NULL AND `id` > ? AND `id` <= ? ORDER BY `id` LIMIT ?" {
		t.Errorf("MySQL next = %s", next)
	}
	sqlite := &Database{Kind: SQLite}
	if _, err := buildQueries(sqlite, "otp", "a,b", "key", ""); err == nil || !strings.Contains(err.Error(), "composite") {
		t.Errorf("--pk a,b: %v, want a composite-key error", err)
	}
	for _, bad := range [][3]string{{"otp", "id", "id"}, {"otp", "ID", "id"}, {"otp", "a.id", "key"}, {"otp", "id", "a.key"}, {"otp;drop", "id", "key"}} {
		if _, err := buildQueries(sqlite, bad[0], bad[1], bad[2], ""); err == nil {
			t.Errorf("buildQueries(%q) accepted", bad)
		}
	}
}

func TestOpenChoosesTheDriver(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "db.sqlite3")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := writeCA(t, dir)
	t.Chdir(dir)
	for _, tc := range []struct{ dsn, kind, err string }{
		{"postgres://app:hunter2@db.internal:5432/app?sslmode=disable", "postgres", ""},
		{"postgresql:///app?host=/run/postgresql", "postgres", ""},
		{"sqlite:" + file, "sqlite", ""},
		{"sqlite:///db.sqlite3", "sqlite", ""}, // dj-database-url: relative
		{"sqlite:///" + file, "sqlite", ""},    // sqlite:////abs/path: absolute
		{"file:" + file + "?_busy_timeout=1", "sqlite", ""},
		{file, "sqlite", ""},
		{"db.sqlite3", "sqlite", ""},
		{"missing.db", "", "no such file"},
		{"sqlite:", "", "names no file"},
		{"mysql://app:hunter2@db.internal:3306/app", "mysql", ""},
		{"mysql2://app@%2Frun%2Fmysqld%2Fmysqld.sock/app", "mysql", ""}, // dj-database-url's socket form
		{"mariadb://app@localhost/app?unix_socket=/run/mysqld/mysqld.sock", "mysql", ""},
		{"mysql://app@db/app?tls=true", "mysql", ""},
		{"mysql-connector://app@db/app", "mysql", ""},
		{"mysqlgis://app@db/app", "mysql", ""},
		{"mysql://app:hunter2@db/", "", "names no database"},
		{"mysql://app:hunter2@db/app?charset=utf8mb4", "mysql", ""},
		{"mysql://app:hunter2@db/app?ssl-ca=" + ca, "mysql", ""}, // dj-database-url's OPTIONS {"ssl": {"ca": ...}}
		{"mysql://app:hunter2@db/app?ssl-ca=" + ca + "&tls=true", "mysql", ""},
		{"mysql://app:hunter2@db/app?ssl-ca=" + ca + "&tls=skip-verify", "", "ssl-ca verifies the server"},
		{"mysql://app:hunter2@db/app?ssl-ca=" + file, "", "holds no PEM certificate"},
		{"mysql://app:hunter2@db/app?ssl-ca=" + filepath.Join(dir, "nope.pem"), "", "no such file"},
		{"mysql://app:hunter2@db/app?charset=utf8mb4%27", "", "charset must be"},
		{"mysql://app:hunter2@db/app?collation=latin1_bin", "", "not supported"},
		{"mysql://app:hunter2@db/app?tls=maybe", "", "tls must be"},
		{"oracle://app@db/app", "", "cannot tell"},
		{"postgres://app:hunter2@db:notaport/app", "", "invalid PostgreSQL DSN"},
	} {
		db, err := Open(tc.dsn, false)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Open(%q) = %v, want an error with %q", tc.dsn, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Open(%q)'s error shows the password", tc.dsn)
			}
			continue
		}
		if err != nil || db.Kind != tc.kind {
			t.Errorf("Open(%q) = %v, %v; want %s", tc.dsn, db, err, tc.kind)
			continue
		}
		if strings.Contains(db.String(), "hunter2") {
			t.Errorf("Database.String() shows the password: %s", db)
		}
		db.Close()
	}
	// The same file by any name is the same database to a checkpoint.
	a, _ := Open("sqlite:db.sqlite3", false)
	b, _ := Open(file, false)
	c, _ := Open("postgres://app:other@db.internal:5432/app", false)
	d, _ := Open("postgres://app:hunter2@db.internal:5432/app", false)
	if a.Fingerprint() != b.Fingerprint() || c.Fingerprint() != d.Fingerprint() || a.Fingerprint() == c.Fingerprint() {
		t.Error("fingerprints must follow the database, not the password or the spelling of the path")
	}
}

func TestLooksLikeSecret(t *testing.T) {
	for s, want := range map[string]bool{
		"JBSWY3DPEHPK3PXP":                         true, // 16, the common minimum
		"jbswy3dpehpk3pxp":                         true,
		"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP":         true, // pyotp.random_base32()
		"GEZDGNBVGY3TQOJQGE======":                 true, // padded to a multiple of 8
		"GEZDGNBVGY3TQOJQGE":                       true, // the same, unpadded
		"GEZDGNBVGY3TQOJQGE==":                     false,
		"JBSWY3DPEHPK3PX":                          false, // too short
		"JBSWY3DPEHPK3PXP1":                        false, // 1 is not base32
		"JBSWY3DPEHPK3PX0":                         false,
		"JBSW Y3DP EHPK 3PXP":                      false,
		"3132333435363738393031323334353637383930": false, // hex, as django_otp stores keys
		"gAAAAABrA163Lt1YISfHEFcVHQpZd_GmlwxdJepgq-PY4qJo8htbR1ljEZpHrk53QZ182VK1MbqMW7IPvo2paZUx6uNlZ6aJqNVIS-NjXxruqWmJRsK_7A8=": false,
		strings.Repeat("A", 129): false,
		"AAAAAAAAAAAAAAAAAAA":    false, // 19 = 3 mod 8: no byte string encodes to it
	} {
		if got := looksLikeSecret(s); got != want {
			t.Errorf("looksLikeSecret(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cp := Checkpoint{Path: filepath.Join(dir, "state.json")}
	if _, ok, err := cp.Load(); ok || err != nil {
		t.Fatalf("Load of no file = %v, %v", ok, err)
	}
	for _, v := range []Value{{int64(math.MaxInt64)}, {int64(-7)}, {"zoë \"quoted\""}, {[]byte{0, 1, 0xff}}} {
		st := State{Version: stateVersion, Table: "t", LastPK: storeValue(v), Scanned: 3, Updated: time.Unix(1, 0).UTC()}
		if err := cp.Save(st); err != nil {
			t.Fatal(err)
		}
		got, ok, err := cp.Load()
		if !ok || err != nil {
			t.Fatalf("Load = %v, %v", ok, err)
		}
		back, err := got.LastPK.value()
		if err != nil || back.String() != v.String() {
			t.Errorf("%v came back as %v (%v)", v, back, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Save left temporary files: %v", entries)
	}
	if err := os.WriteFile(cp.Path, []byte(`{"version": 99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cp.Load(); err == nil {
		t.Error("a checkpoint of another version was accepted")
	}
	if err := os.WriteFile(cp.Path, []byte(`{"vers`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cp.Load(); err == nil {
		t.Error("a truncated checkpoint was accepted")
	}
	if err := cp.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := cp.Remove(); err != nil {
		t.Errorf("Remove of no file: %v", err)
	}
}

func TestReportListsIDsNotValues(t *testing.T) {
	r := &Report{Mode: Rotate, Keys: Keys{Primary: "aaaa", DecryptOnly: []string{"bbbb"}}, Complete: true, Scanned: 10, Elapsed: 2 * time.Second}
	for i := range 5 {
		r.Undecryptable.add(Value{int64(i)}, "INVALID_SIGNATURE", 3)
	}
	r.Undecryptable.add(Value{"x"}, "MALFORMED", 10)
	var b strings.Builder
	r.Write(&b)
	out := b.String()
	for _, want := range []string{
		"rotated: complete",
		"undecryptable               6\n  INVALID_SIGNATURE: ids 0, 1, 2\n  MALFORMED: ids \"x\"\n  ... and 2 more not listed",
		"rate                        5 rows/s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	// A check lists every loaded key, an old one at 0 included, and an id
	// the sidecar no longer reports.
	r = &Report{Mode: Check, Keys: Keys{Primary: "aaaa", DecryptOnly: []string{"bbbb"}}, ByKey: map[string]int64{"aaaa": 5, "cccc": 1}}
	b.Reset()
	r.Write(&b)
	if want := "under primary key aaaa  5\nunder old     key bbbb  0\nunder unknown key cccc  1\n"; !strings.Contains(b.String(), want) {
		t.Errorf("check report lacks\n%s\nin\n%s", want, b.String())
	}
}

func TestPlaintextShapes(t *testing.T) {
	for _, tc := range []struct {
		shape PlaintextShape
		value string
		want  bool
	}{
		{TOTPHex, "3132333435363738393031323334353637383930", true}, // django-otp's default, 40 digits
		{TOTPHex, "3132333435363738393031323334353637383930ABCDEF", true},
		{TOTPHex, "0123456789abcdef", true},        // 16, the shortest
		{TOTPHex, strings.Repeat("ab", 40), true},  // 80, the longest
		{TOTPHex, strings.Repeat("ab", 41), false}, // over django-otp's 80
		{TOTPHex, "0123456789abcde", false},        // odd
		{TOTPHex, "0123456789abcdeg", false},       // not hex
		{TOTPHex, "JBSWY3DPEHPK3PXP", false},       // base32
		{TOTPHex, "gAAAAABlfJ2-xyz", false},        // a token's start
		{Base32, "JBSWY3DPEHPK3PXP", true},
		{Base32, "3132333435363738393031323334353637383930", false}, // 0, 1, 8, 9 are not base32
		{Base32, "gAAAAABrDeFnYDunPyrAzWfz", false},                 // a token cut short, base32 characters only
		{Base32, "gAAAAABrDeFnYDun", false},
		{Base32, "GAAAAABRDEFNYDUN", true}, // the prefix is a token's exactly
		{NoPlaintext, "JBSWY3DPEHPK3PXP", false},
	} {
		if got := tc.shape.matches(tc.value); got != tc.want {
			t.Errorf("%q.matches(%q) = %v, want %v", tc.shape, tc.value, got, tc.want)
		}
	}
	for in, want := range map[string]PlaintextShape{"base32": Base32, "totp-hex": TOTPHex, "hex": NoPlaintext, "": NoPlaintext} {
		got, err := ParsePlaintextShape(in)
		if got != want || (err != nil) != (want == NoPlaintext) {
			t.Errorf("ParsePlaintextShape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestShardCondition(t *testing.T) {
	for _, tc := range []struct {
		shard      Shard
		kind, typ  string
		want, fail string
	}{
		{Shard{0, 1}, Postgres, "uuid", "", ""},
		{Shard{2, 4}, Postgres, "bigint", `(("id" % 4) + 4) % 4 = 2`, ""},
		{Shard{2, 4}, Postgres, "uuid", `((hashtext("id"::text)::bigint % 4) + 4) % 4 = 2`, ""},
		{Shard{1, 3}, MySQL, "int", `(("id" % 3) + 3) % 3 = 1`, ""},
		{Shard{1, 3}, MySQL, "char", `CRC32("id") % 3 = 1`, ""},
		{Shard{0, 2}, SQLite, "integer", `(("id" % 2) + 2) % 2 = 0`, ""},
		{Shard{0, 2}, SQLite, "text", "", "integer primary key"},
		{Shard{0, 2}, Postgres, "interval", `((hashtext("id"::text)::bigint % 2) + 2) % 2 = 0`, ""}, // "int" in a name is not an integer
	} {
		got, err := tc.shard.condition(tc.kind, `"id"`, tc.typ)
		if got != tc.want || (err == nil) != (tc.fail == "") || err != nil && !strings.Contains(err.Error(), tc.fail) {
			t.Errorf("%v.condition(%s, %s) = %q, %v; want %q", tc.shard, tc.kind, tc.typ, got, err, tc.want)
		}
	}
	for in, ok := range map[string]bool{"0/1": true, "3/4": true, "4/4": false, "-1/4": false, "1/0": false, "1": false, "a/b": false, "1/4x": false} {
		if _, err := ParseShard(in); (err == nil) != ok {
			t.Errorf("ParseShard(%q): %v", in, err)
		}
	}
}

// TestAskSidecar: a failed call is wrapped with the method's name, and a
// call that returns fewer results than it was given inputs is refused, so
// that no row is paired with another row's token.
func TestAskSidecar(t *testing.T) {
	down := errors.New("connection refused")
	failing := func(context.Context, []string) ([]Encrypted, error) { return nil, down }
	if _, err := askSidecar(context.Background(), "ReEncrypt", failing, []string{"a"}); !errors.Is(err, down) || !strings.HasPrefix(err.Error(), "sidecar ReEncrypt: ") {
		t.Errorf("failed call: %v", err)
	}
	short := func(context.Context, []string) ([]Encrypted, error) { return make([]Encrypted, 1), nil }
	if _, err := askSidecar(context.Background(), "ReEncrypt", short, []string{"a", "b"}); err == nil || err.Error() != "sidecar ReEncrypt returned 1 results for 2 inputs" {
		t.Errorf("short answer: %v", err)
	}
	whole := func(_ context.Context, in []string) ([]Encrypted, error) { return make([]Encrypted, len(in)), nil }
	if got, err := askSidecar(context.Background(), "ReEncrypt", whole, []string{"a", "b"}); err != nil || len(got) != 2 {
		t.Errorf("whole answer: %d results, %v", len(got), err)
	}
}
