package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testpki"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:50051":      true,
		"127.8.9.1:50051":      true,
		"[::1]:50051":          true,
		"localhost:50051":      true,
		"unix:///run/f.sock":   true,
		":50051":               false,
		"0.0.0.0:50051":        false,
		"[::]:50051":           false,
		"10.0.0.5:50051":       false,
		"sidecar.example:5005": false,
		"not an address":       false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestListenUnixSocketGroup(t *testing.T) {
	gid := strconv.Itoa(os.Getgid())
	path := filepath.Join(t.TempDir(), "fernet.sock")
	lis, err := Listen("unix://"+path, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o660 || strconv.Itoa(int(info.Sys().(*syscall.Stat_t).Gid)) != gid {
		t.Fatalf("socket mode %v gid %d, want 0660 and gid %s", info.Mode().Perm(), info.Sys().(*syscall.Stat_t).Gid, gid)
	}
	if _, err := Listen("unix://"+filepath.Join(t.TempDir(), "x.sock"), "no-such-group-here"); err == nil {
		t.Fatal("an unknown group must be refused")
	}
}

// serveWith starts a Server built from cfg on loopback TCP.
func serveWith(t *testing.T, cfg Config) string {
	t.Helper()
	keys := testkeys.NewSource(testkeys.New(t))
	cfg.Keys, cfg.Limits, cfg.MaxMessageBytes, cfg.Version = keys, DefaultLimits, 4<<20, "test"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return servetest.Serve(t, New(cfg), Listen, "127.0.0.1:0")
}

func statusCall(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = fernetv1.NewFernetServiceClient(conn).GetStatus(c, &fernetv1.GetStatusRequest{})
	return err
}

func TestTLSAndMutualTLS(t *testing.T) {
	p := testpki.New(t)
	caFile, serverCert, serverKey, _, _ := p.Write(t, t.TempDir())
	serverOnly, err := LoadTLS(slog.New(slog.DiscardHandler), serverCert, serverKey, "")
	if err != nil {
		t.Fatal(err)
	}
	mutual, err := LoadTLS(slog.New(slog.DiscardHandler), serverCert, serverKey, caFile)
	if err != nil {
		t.Fatal(err)
	}
	trusting, withClientCert := clientCredentials(t, p, false), clientCredentials(t, p, true)

	tlsAddr := serveWith(t, Config{TLS: serverOnly})
	if err := statusCall(t, tlsAddr, trusting); err != nil {
		t.Fatalf("TLS call: %v", err)
	}
	if err := statusCall(t, tlsAddr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call to a TLS server = %v, want UNAVAILABLE", err)
	}

	mtlsAddr := serveWith(t, Config{TLS: mutual})
	if err := statusCall(t, mtlsAddr, withClientCert); err != nil {
		t.Fatalf("mTLS call with a client certificate: %v", err)
	}
	if err := statusCall(t, mtlsAddr, trusting); err == nil {
		t.Fatal("mTLS server accepted a client without a certificate")
	}

	if _, err := LoadTLS(slog.New(slog.DiscardHandler), serverCert, serverKey, serverKey); err == nil {
		t.Fatal("a client CA file without a certificate must be refused")
	}
}

func TestAuditLogNamesKeysNotValues(t *testing.T) {
	var logs bytes.Buffer
	addr := serveWith(t, Config{AuditCalls: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	conn := servetest.Dial(t, addr)
	client := fernetv1.NewFernetServiceClient(conn)
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sealed, err := client.Encrypt(c, &fernetv1.EncryptRequest{Plaintext: []byte("JBSWY3DPEHPK3PXP")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Decrypt(c, &fernetv1.DecryptRequest{Token: sealed.GetToken()[:60]}); err == nil {
		t.Fatal("a truncated token decrypted")
	}

	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == "call" {
			lines = append(lines, entry)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2:\n%s", len(lines), &logs)
	}
	encrypt, decrypt := lines[0], lines[1]
	if encrypt["method"] != "/fernet.v1.FernetService/Encrypt" || encrypt["code"] != "OK" ||
		encrypt["key_ids"].([]any)[0] != sealed.GetKeyId() || !strings.HasPrefix(encrypt["peer"].(string), "tcp:127.0.0.1:") {
		t.Errorf("encrypt audit line = %v", encrypt)
	}
	if decrypt["code"] != "InvalidArgument" || decrypt["reason"] == "" {
		t.Errorf("decrypt audit line = %v, want its code and reason", decrypt)
	}
	for _, secret := range []string{sealed.GetToken(), "JBSWY3DPEHPK3PXP"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("the audit log holds a token or plaintext")
		}
	}
}

func TestHealthOnlyServerServesNothingElse(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	lis, err := Listen("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	go ts.ServeHealth(lis)
	conn := servetest.Dial(t, lis.Addr().String())
	resp, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{Service: "fernet.v1.FernetService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health port Check = %v, %v; want SERVING", resp, err)
	}
	_, err = fernetv1.NewFernetServiceClient(conn).GetStatus(ctx(t), &fernetv1.GetStatusRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("FernetService on the health port = %v, want UNIMPLEMENTED", err)
	}
}

func TestMutualTLSAllowsOnlyListedClients(t *testing.T) {
	p := testpki.New(t) // its client certificate's common name is "app"
	caFile, serverCert, serverKey, _, _ := p.Write(t, t.TempDir())
	withClientCert := clientCredentials(t, p, true)
	for _, tt := range []struct {
		allowed []string
		admit   bool
	}{
		{[]string{"spiffe://cluster.local/ns/app/sa/app", "app"}, true},
		{[]string{"spiffe://cluster.local/ns/other/sa/other", "other"}, false},
	} {
		cfg, err := LoadTLS(slog.New(slog.DiscardHandler), serverCert, serverKey, caFile, tt.allowed...)
		if err != nil {
			t.Fatal(err)
		}
		err = statusCall(t, serveWith(t, Config{TLS: cfg}), withClientCert)
		if (err == nil) != tt.admit {
			t.Errorf("allowed %v: a call from %q = %v, want admitted %v", tt.allowed, "app", err, tt.admit)
		}
	}
}

// TestTLSReloadsChangedFiles: new connections get the certificate now in
// the files; a broken change keeps the one in use, and is logged once,
// without the files' contents.
func TestTLSReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	first, second := testpki.New(t), testpki.New(t)
	_, serverCert, serverKey, _, _ := first.Write(t, dir)
	var logs testenv.LogBuffer
	cfg, err := LoadTLS(slog.New(slog.NewJSONHandler(&logs, nil)), serverCert, serverKey, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveWith(t, Config{TLS: cfg})
	trusting := func(p *testpki.PKI) credentials.TransportCredentials { return clientCredentials(t, p, false) }
	if err := statusCall(t, addr, trusting(first)); err != nil {
		t.Fatal(err)
	}
	for i, garbage := range []string{"not a certificate", "still not one"} {
		if err := os.WriteFile(serverCert, []byte(garbage), 0o600); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := statusCall(t, addr, trusting(first)); err != nil {
				t.Fatalf("a broken certificate file must keep the certificate in use: %v", err)
			}
		}
		if warnings := strings.Count(logs.String(), "do not load"); warnings != i+1 || strings.Contains(logs.String(), garbage) {
			t.Fatalf("after %d broken files, %d warnings, want one each, without the file's contents:\n%s", i+1, warnings, logs.String())
		}
	}
	second.Write(t, dir)
	if err := statusCall(t, addr, trusting(second)); err != nil {
		t.Fatalf("a call trusting the new CA after the files changed: %v", err)
	}
	if err := statusCall(t, addr, trusting(first)); err == nil {
		t.Fatal("the old certificate is still served after the files changed")
	}
}

// clientCredentials trust p's CA and, withCert, present p's client
// certificate.
func clientCredentials(t *testing.T, p *testpki.PKI, withCert bool) credentials.TransportCredentials {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	cfg := &tls.Config{RootCAs: pool}
	if withCert {
		cert, err := tls.X509KeyPair(p.ClientCertPEM, p.ClientKeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg)
}
