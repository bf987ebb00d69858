package rotation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// mysqlSchemes are the URL schemes of MySQL and MariaDB: dj-database-url's
// (mysql2, mysqlgis and mysql-connector pick Django backends; the database
// is the same) and mariadb.
var mysqlSchemes = []string{"mysql", "mysql2", "mysqlgis", "mysql-connector", "mariadb"}

func isMySQLURL(dsn string) bool {
	scheme, _, found := strings.Cut(dsn, "://")
	return found && slices.Contains(mysqlSchemes, scheme)
}

// openMySQL opens a MySQL or MariaDB URL, as Django's and Flask's
// settings write it (dj-database-url, SQLAlchemy without the driver
// part):
//
//	mysql://user:pass@host:3306/db
//	mysql://user:pass@%2Frun%2Fmysqld%2Fmysqld.sock/db    a Unix socket, as dj-database-url takes it
//	mysql://user:pass@localhost/db?unix_socket=/run/mysqld/mysqld.sock
//	mysql://...?tls=true                              TLS (also skip-verify, preferred)
//	mysql://...?ssl-ca=/etc/ssl/db-ca.pem             TLS, the server verified against this CA (dj-database-url's OPTIONS ssl.ca)
//	mysql://...?charset=utf8mb4                       the connection's character set (SET NAMES)
//
// The other mysqlSchemes are the same. The password may be left out
// and given in MYSQL_PWD instead, as the mysql client takes it.
func openMySQL(dsn string, readOnly bool) (*Database, error) {
	cfg, err := mysqlConfig(dsn)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, errors.New("invalid MySQL DSN")
	}
	if readOnly {
		connector = readOnlyConnector{connector}
	}
	identity := fmt.Sprintf("mysql %s %s/%s as %s", cfg.Net, cfg.Addr, cfg.DBName, cfg.User)
	return &Database{SQL: sql.OpenDB(connector), Kind: MySQL, identity: identity}, nil
}

// charsetPattern is what a charset parameter may be: a MySQL character
// set's name, such as utf8mb4 or latin1.
var charsetPattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// mysqlConfig reads a MySQL URL, as openMySQL takes it, into the driver's
// configuration.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	dsn, socket := socketHost(dsn)
	u, err := url.Parse(dsn)
	if err != nil {
		// url's message quotes the DSN, password included.
		return nil, errors.New("invalid MySQL DSN")
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	password, set := u.User.Password()
	if !set {
		password = os.Getenv("MYSQL_PWD")
	}
	cfg.Passwd = password
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
		return nil, errors.New("the MySQL DSN names no database: want mysql://user@host/db")
	}
	host := u.Hostname()
	query := u.Query()
	switch {
	case query.Get("unix_socket") != "":
		cfg.Net, cfg.Addr = "unix", query.Get("unix_socket")
	case socket != "":
		cfg.Net, cfg.Addr = "unix", socket
	default:
		port := u.Port()
		if port == "" {
			port = "3306"
		}
		if host == "" {
			host = "localhost"
		}
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	}
	for key := range query {
		switch key {
		case "unix_socket":
		case "tls":
			cfg.TLSConfig = query.Get("tls")
		case "charset":
			charset := query.Get("charset")
			if !charsetPattern.MatchString(charset) {
				return nil, errors.New("invalid MySQL DSN: charset must be a character set's name, e.g. utf8mb4")
			}
			// SET NAMES charset, in the charset's default collation.
			if err := cfg.Apply(mysql.Charset(charset, "")); err != nil {
				return nil, fmt.Errorf("invalid MySQL DSN: %w", err)
			}
		case "ssl-ca":
			var err error
			if cfg.TLS, err = verifiedTLS(query.Get("ssl-ca")); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("MySQL DSN parameter %q is not supported (only unix_socket, tls, ssl-ca and charset)", key)
		}
	}
	if cfg.TLS != nil && cfg.TLSConfig != "" && cfg.TLSConfig != "true" {
		return nil, fmt.Errorf("invalid MySQL DSN: ssl-ca verifies the server, which tls=%s does not", cfg.TLSConfig)
	}
	if cfg.TLSConfig != "" {
		// NewConnector checks the value and loads the TLS settings.
		if _, err := mysql.ParseDSN(cfg.FormatDSN()); err != nil {
			return nil, errors.New("invalid MySQL DSN: tls must be true, false, skip-verify or preferred")
		}
	}
	// Without strict mode, a server cuts a token longer than the column
	// to fit, warns, and commits: the row is lost. Strict, the UPDATE
	// fails and the batch rolls back. The driver sends the value as it
	// is ("SET sql_mode = ..."), so this is SQL, keeping the server's
	// other modes (NULLIF: no leading comma when there are none).
	cfg.Params = map[string]string{"sql_mode": "CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')"}
	return cfg, nil
}

// verifiedTLS is TLS that verifies the server's certificate against the
// CA certificates in the PEM file at path (the driver sets the server
// name to the DSN's host).
func verifiedTLS(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("MySQL DSN ssl-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("MySQL DSN ssl-ca: %s holds no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// socketHost finds a socket path given as the host, percent-encoded
// (%2Frun%2Fmysqld%2Fmysqld.sock), which Go's URL parser refuses in a
// host. It returns the DSN with "localhost" in its place, and the path.
func socketHost(dsn string) (rest, socket string) {
	scheme, afterScheme, _ := strings.Cut(dsn, "://")
	authority, path, hasPath := strings.Cut(afterScheme, "/")
	userinfo, host := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, host = authority[:i+1], authority[i+1:]
	}
	if !strings.HasPrefix(strings.ToUpper(host), "%2F") {
		return dsn, ""
	}
	socket, err := url.PathUnescape(host)
	if err != nil {
		return dsn, ""
	}
	rest = scheme + "://" + userinfo + "localhost"
	if hasPath {
		rest += "/" + path
	}
	return rest, socket
}

// readOnlyConnector makes every connection's transactions read-only. The
// statement, unlike the session variable (tx_read_only in MariaDB,
// transaction_read_only in MySQL), is spelled the same in both.
type readOnlyConnector struct {
	driver.Connector
}

func (c readOnlyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	execer, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("the MySQL driver cannot execute statements on a new connection")
	}
	if _, err := execer.ExecContext(ctx, "SET SESSION TRANSACTION READ ONLY", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("making the connection read-only: %w", err)
	}
	return conn, nil
}
