package dbtest_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// The server is reachable the two ways the package doc promises: from Go
// with DSN, and from Python's MySQLdb with Socket, User, Password, Database.
func TestStartMariaDB(t *testing.T) {
	my := dbtest.StartMariaDB(t)
	db := dbtest.OpenMariaDB(t, my.DSN)
	if _, err := db.Exec("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO notes VALUES (1, 'héllo')"); err != nil {
		t.Fatal(err)
	}

	python := testenv.DebianPython // Debian's, which has python3-mysqldb
	script := `
import sys, MySQLdb
socket, user, password, db = sys.argv[1:]
conn = MySQLdb.connect(unix_socket=socket, user=user, passwd=password, db=db, charset="utf8mb4")
cur = conn.cursor()
cur.execute("SELECT body FROM notes WHERE id = 1")
print(cur.fetchone()[0])
cur.execute("CREATE DATABASE test_app")
`
	out, err := exec.Command(python, "-c", script, my.Socket, my.User, my.Password, my.Database).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No module named 'MySQLdb'") {
			testenv.Missing(t, "Python's MySQLdb (Debian package python3-mysqldb)")
		}
		t.Fatalf("python MySQLdb: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "héllo" {
		t.Errorf("python read %q, want %q", got, "héllo")
	}

	other := dbtest.OpenMariaDB(t, my.CreateDatabase(t, "second"))
	var name string
	if err := other.QueryRow("SELECT DATABASE()").Scan(&name); err != nil || name != "second" {
		t.Errorf("CreateDatabase DSN connects to %q (%v), want second", name, err)
	}
}
