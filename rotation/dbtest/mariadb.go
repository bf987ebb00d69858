package dbtest

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // "mysql"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// MariaDB is a running MariaDB server.
type MariaDB struct {
	// Socket is the path of the server's Unix socket; it has no TCP port.
	Socket string
	// User and Password log in with every privilege, creating databases
	// included. Password is empty.
	User, Password string
	// Database exists and is empty when the server starts.
	Database string
	// DSN connects to Database as User over Socket, in go-sql-driver/mysql's
	// form (driver name "mysql").
	DSN string
}

// StartMariaDB starts a throwaway server and stops it when the test ends.
// Without the binaries the test ends as testenv.Missing says.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	installDB, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		testenv.Missing(t, "mariadb-install-db (Debian package mariadb-server)")
		return nil
	}
	server, err := exec.LookPath("mariadbd")
	if err != nil {
		// Debian puts the server in /usr/sbin, which a non-root PATH may lack.
		server = "/usr/sbin/mariadbd"
		if _, err := os.Stat(server); err != nil {
			testenv.Missing(t, "mariadbd (Debian package mariadb-server)")
			return nil
		}
	}
	// Not t.TempDir: a socket path must fit in 108 bytes, and test names
	// make t.TempDir paths long.
	dir, err := os.MkdirTemp("", "fernetctl-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	socket := filepath.Join(dir, "mysqld.sock")
	// --no-defaults: the machine's /etc/mysql configuration (a port, a
	// socket under /run) is not ours. --tmpdir: the shared /tmp sees
	// other servers' temporary tables, whose names can collide with ours.
	// mariadbd refuses to run as root unless told to, and CI runs as root.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	common := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp}
	if os.Geteuid() == 0 {
		common = append(common, "--user=root")
	}
	install := exec.Command(installDB, append(common,
		"--auth-root-authentication-method=normal", "--skip-test-db")...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "server.log")
	// Durability is off and the buffer pool small; this is a test, and
	// several servers may run at once.
	cmd := exec.Command(server, append(common,
		"--socket="+socket, "--skip-networking", "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--log-error="+logPath, "--skip-log-bin",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0", "--max-connections=100")...)
	// SIGTERM is a normal shutdown; it does not wait for clients.
	exited := startDaemon(t, cmd, "mariadbd", syscall.SIGTERM)
	my := &MariaDB{Socket: socket, User: "root", Database: "app"}
	my.DSN = my.dsnFor("")
	admin := waitForServer(t, "mariadbd", "mysql", my.DSN, 60*time.Second, exited, logPath)
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + my.Database); err != nil {
		t.Fatal(err)
	}
	my.DSN = my.dsnFor(my.Database)
	return my
}

// dsnFor is the go-sql-driver/mysql DSN of database name ("" for none).
func (my *MariaDB) dsnFor(name string) string {
	return fmt.Sprintf("%s:%s@unix(%s)/%s", my.User, my.Password, my.Socket, name)
}

// CreateDatabase makes a new database on the server and returns its DSN,
// so that tests sharing one server do not share tables.
func (my *MariaDB) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	db := OpenMariaDB(t, my.DSN)
	if _, err := db.Exec("CREATE DATABASE `" + strings.ReplaceAll(name, "`", "``") + "`"); err != nil {
		t.Fatal(err)
	}
	return my.dsnFor(name)
}

// OpenMariaDB opens a go-sql-driver/mysql DSN the way an app would.
func OpenMariaDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	return open(t, "mysql", dsn)
}
