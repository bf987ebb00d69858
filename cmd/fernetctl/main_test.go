package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	base := []string{"--dsn", "app.sqlite3", "--table", "otp_totp_totpdevice", "--column", "key"}

	c, err := parseFlags(base, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.pk != "id" || c.batchSize != 1000 || c.sidecar != "127.0.0.1:50051" || c.state != ".fernetctl-otp_totp_totpdevice.key.json" || c.timeout != 30*time.Second {
		t.Errorf("defaults = %+v", c)
	}

	env["DATABASE_URL"] = "postgres://app@db/app"
	c, err = parseFlags(base[2:], getenv, io.Discard)
	if err != nil || c.dsn != "postgres://app@db/app" {
		t.Errorf("DATABASE_URL fallback: %q, %v", c.dsn, err)
	}
	c, _ = parseFlags(base, getenv, io.Discard)
	if c.dsn != "app.sqlite3" {
		t.Errorf("--dsn must win over DATABASE_URL, got %q", c.dsn)
	}
	delete(env, "DATABASE_URL")

	// --legacy-plaintext takes a shape; bare, as before shapes, it is base32.
	for args, want := range map[string]rotation.PlaintextShape{
		"--legacy-plaintext totp-hex":        rotation.TOTPHex,
		"--legacy-plaintext=base32":          rotation.Base32,
		"--legacy-plaintext":                 rotation.Base32,
		"--legacy-plaintext --check":         rotation.Base32,
		"--encrypt-plaintext":                rotation.NoPlaintext, // the job defaults it to base32
		"--shard 2/8 --legacy-plaintext hex": "error",
	} {
		c, err := parseFlags(append(append([]string{}, base...), strings.Fields(args)...), getenv, io.Discard)
		if want == "error" {
			if err == nil {
				t.Errorf("parseFlags(%s) accepted", args)
			}
			continue
		}
		if err != nil || c.legacy != want {
			t.Errorf("parseFlags(%s): shape %q, %v; want %q", args, c.legacy, err, want)
		}
	}
	c, err = parseFlags(append(append([]string{}, base...), "--shard", "2/8"), getenv, io.Discard)
	if err != nil || c.shard != (rotation.Shard{Index: 2, Count: 8}) || c.state != ".fernetctl-otp_totp_totpdevice.key.shard-2-of-8.json" {
		t.Errorf("--shard 2/8: %+v, %v; want shard 2 of 8 with its own checkpoint", c, err)
	}

	for _, bad := range [][]string{
		base[2:], // no DSN
		{"--dsn", "x.db", "--table", "t"},
		append(append([]string{}, base...), "--check", "--dry-run"),
		append(append([]string{}, base...), "--batch-size", "0"),
		append(append([]string{}, base...), "--timeout", "0s"),
		append(append([]string{}, base...), "--check", "--pushgateway", "http://127.0.0.1:9091"),
		append(append([]string{}, base...), "extra"),
		append(append([]string{}, base...), "--shard", "8/8"),
		append(append([]string{}, base...), "--shard", "1"),
		append(append([]string{}, base...), "--shard", "-1/4"),
		append(append([]string{}, base...), "--shard", "1/4x"),
		{"--nope"},
	} {
		if _, err := parseFlags(bad, getenv, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestRunUsageAndExitCodes(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		code int
		say  string
	}{
		{nil, exitUsage, "usage: fernetctl reencrypt"},
		{[]string{"help"}, exitOK, "usage:"},
		{[]string{"rotate"}, exitUsage, `unknown command "rotate"`},
		{[]string{"reencrypt", "-h"}, exitOK, "-encrypt-plaintext"},
		{[]string{"reencrypt", "--table", "t", "--column", "c"}, exitUsage, "--dsn"},
		{[]string{"reencrypt", "--dsn", "oracle://x", "--table", "t", "--column", "c"}, exitUsage, "cannot tell the database"},
		{[]string{"reencrypt", "--dsn", "mysql://x", "--table", "t", "--column", "c"}, exitUsage, "names no database"},
		{[]string{"reencrypt", "--dsn", "/nonexistent/app.db", "--table", "t", "--column", "c"}, exitUsage, "no such file"},
	} {
		var stderr strings.Builder
		code := run(tc.args, getenv, io.Discard, &stderr, nil, false)
		if code != tc.code || !strings.Contains(stderr.String(), tc.say) {
			t.Errorf("run(%q) = %d, %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.say)
		}
	}
}

func TestSidecarUnreachableIsAFailure(t *testing.T) {
	path := t.TempDir() + "/app.db"
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	code := run([]string{"reencrypt", "--dsn", path, "--table", "t", "--column", "c", "--sidecar", "unix://" + t.TempDir() + "/none.sock", "--timeout", "2s"},
		func(string) string { return "" }, io.Discard, &stderr, nil, false)
	if code != exitFailed || !strings.Contains(stderr.String(), "sidecar status") {
		t.Errorf("exit %d, %s; want %d and the sidecar named", code, stderr.String(), exitFailed)
	}
}

func TestProgress(t *testing.T) {
	clock := time.Unix(1000, 0)
	now := func() time.Time { return clock }
	pr := func(done, total int64) rotation.Progress {
		return rotation.Progress{Done: done, Total: total, LastPK: rotation.IntValue(done)}
	}

	var lines strings.Builder
	p := newProgress(&lines, false, 10*time.Second, now)
	clock = clock.Add(5 * time.Second)
	p.update(pr(5000, 20000)) // too soon for a line
	clock = clock.Add(5 * time.Second)
	p.update(pr(10000, 20000))
	p.done()
	if want := "progress: 10000/20000 rows (50%), 1000 rows/s, ETA 10s, last primary key 10000\n"; lines.String() != want {
		t.Errorf("lines = %q, want %q", lines.String(), want)
	}

	var bar strings.Builder
	clock = time.Unix(1000, 0)
	p = newProgress(&bar, true, 10*time.Second, now)
	clock = clock.Add(2 * time.Second)
	p.update(pr(30000, 20000)) // the app inserted rows meanwhile
	p.update(pr(30001, 20000)) // within barEvery: not drawn
	p.done()
	want := "\r[##############################] 30000/20000 rows (100%), 15000 rows/s, ETA 0s\x1b[K\n"
	if bar.String() != want {
		t.Errorf("bar = %q, want %q", bar.String(), want)
	}
}
