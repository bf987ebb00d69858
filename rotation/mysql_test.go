package rotation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testpki"
	"github.com/fernet-sidecar/fernet-sidecar/rotation/dbtest"
)

// writeCA writes a test CA's certificate as PEM in dir and returns its
// path.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, testpki.New(t).CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMySQLParameters: dj-database-url's ssl-ca becomes TLS that verifies
// the server against that CA, by the DSN's host name; charset becomes the
// connection's character set.
func TestMySQLParameters(t *testing.T) {
	ca := writeCA(t, t.TempDir())
	cfg, err := mysqlConfig("mysql://app@db.internal:3306/app?ssl-ca=" + ca + "&charset=utf8mb4")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs == nil || cfg.TLS.InsecureSkipVerify {
		t.Errorf("ssl-ca: TLS %+v, want verification against the CA", cfg.TLS)
	}
	if dsn := cfg.FormatDSN(); !strings.Contains(dsn, "charset=utf8mb4") {
		t.Errorf("charset: the driver's DSN is %s, want charset=utf8mb4", dsn)
	}
}

// TestMySQLCharset connects with charset=latin1 and finds the session's
// character set is latin1, not the driver's default utf8mb4.
func TestMySQLCharset(t *testing.T) {
	my := dbtest.StartMariaDB(t)
	for _, charset := range []string{"latin1", "utf8mb4"} {
		db := openJobDB(t, "mysql://"+my.User+"@localhost/"+my.Database+"?unix_socket="+my.Socket+"&charset="+charset, true)
		var got string
		if err := db.SQL.QueryRow("SELECT @@character_set_client").Scan(&got); err != nil || got != charset {
			t.Errorf("charset=%s: the session's character set is %q (%v)", charset, got, err)
		}
	}
}
