// Package dbtest, for tests only, gives them real databases: a SQLite file,
// and PostgreSQL and MariaDB servers of their own, started from Debian's
// postgresql and mariadb-server packages (scripts/test installs them),
// listening only on a Unix socket in a temporary directory, stopped when the
// test ends.
//
//	pg := dbtest.StartPostgres(t)       // pg.DSN, for pgx: trust auth as "postgres"
//	dsn := pg.CreateDatabase(t, "shop")
//
//	my := dbtest.StartMariaDB(t)        // my.DSN, for go-sql-driver/mysql
//	dsn = my.CreateDatabase(t, "shop")
//
// A MariaDB server has a database named "app" and a user "root" with an empty
// password (mysql_native_password, so any OS user can log in over the
// socket). Python's MySQLdb connects with
// MySQLdb.connect(unix_socket=my.Socket, user=my.User, passwd=my.Password,
// db=my.Database), and Django with ENGINE "django.db.backends.mysql", NAME
// my.Database, USER my.User, PASSWORD my.Password, HOST my.Socket (a HOST
// starting with "/" is a socket path); the user may create databases, as
// Django's test runner does.
package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx"
	_ "modernc.org/sqlite"             // "sqlite"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// SQLiteFile creates an empty SQLite database file and returns its path.
func SQLiteFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.sqlite3")
	db := OpenSQLite(t, path)
	if _, err := db.Exec("PRAGMA user_version = 1"); err != nil { // creates the file
		t.Fatal(err)
	}
	return path
}

// OpenSQLite opens a SQLite file the way an app would, waiting on locks.
func OpenSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	return open(t, "sqlite", "file:"+path+"?_busy_timeout=10000&_txlock=immediate")
}

// Postgres is a running PostgreSQL server.
type Postgres struct {
	// DSN connects to the "postgres" database as the "postgres" superuser
	// over the server's Unix socket.
	DSN string
	cmd *exec.Cmd
}

// pgBinDir finds Debian's server binaries, which are not on PATH:
// /usr/lib/postgresql/<major>/bin, the newest major if several.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a < b
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", errors.New("no /usr/lib/postgresql/*/bin/postgres and no initdb on PATH")
}

// StartPostgres starts a throwaway server and stops it when the test ends.
// Without the binaries the test ends as testenv.Missing says.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		testenv.Missing(t, "PostgreSQL server binaries (Debian package postgresql; "+err.Error()+")")
		return nil
	}
	// PostgreSQL refuses to run as root, and CI runs as root: then the
	// server runs as the "postgres" user the Debian package creates.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Missing(t, "the postgres OS user (Debian package postgresql creates it)")
			return nil
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are mode 0700 and owned by us, which the
	// postgres user could not enter. /tmp itself is world-writable.
	dir, err := os.MkdirTemp("", "fernetctl-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	initdb := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// Only a Unix socket, in our own directory: no port to collide with
	// anything else on the machine. Durability is off; this is a test.
	server := run("postgres", "-D", data, "-k", dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=50")
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	server.Stdout, server.Stderr = logFile, logFile
	// SIGINT is PostgreSQL's fast shutdown: it disconnects clients.
	exited := startDaemon(t, server, "postgres", syscall.SIGINT)
	pg := &Postgres{DSN: "postgres://postgres@/postgres?host=" + dir + "&sslmode=disable", cmd: server}
	waitForServer(t, "postgres", "pgx", pg.DSN, 30*time.Second, exited, filepath.Join(dir, "server.log")).Close()
	return pg
}

// startDaemon starts cmd, a database server, and stops it when the test
// ends: with the signal stop, then SIGKILL after 15 s. The channel it
// returns gets what cmd.Wait returns.
func startDaemon(t testing.TB, cmd *exec.Cmd, name string, stop os.Signal) chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(stop)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	return exited
}

// waitForServer opens dsn with driver and pings it until the server
// answers, within timeout. The test fails with the server's log if it
// exits first (the exit stays in exited) or does not answer in time.
func waitForServer(t testing.TB, name, driver, dsn string, timeout time.Duration, exited chan error, logPath string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return db
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logPath)
			exited <- werr
			t.Fatalf("%s exited (%v):\n%s", name, werr, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s not accepting connections after %v (%v):\n%s", name, timeout, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CreateDatabase makes a new database on the server and returns its DSN,
// so that tests sharing one server do not share tables.
func (pg *Postgres) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("CREATE DATABASE %q", name)); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(pg.DSN, "/postgres?", "/"+name+"?", 1)
}

// OpenPostgres opens a DSN the way an app would.
func OpenPostgres(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	return open(t, "pgx", dsn)
}

// open opens dsn with driver, and closes it when the test ends.
func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Snapshot runs query, which selects an integer id and one value, and
// returns the values by id ([]byte as string, so that snapshots compare
// with ==).
func Snapshot(t testing.TB, db *sql.DB, query string) map[int64]any {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]any{}
	for rows.Next() {
		var id int64
		var v any
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
