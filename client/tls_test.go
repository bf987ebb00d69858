package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testpki"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// TestTLS dials a real server that requires TLS and a client certificate.
func TestTLS(t *testing.T) {
	p := testpki.New(t)
	serverCert, err := tls.X509KeyPair(p.ServerCertPEM, p.ServerKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.X509KeyPair(p.ClientCertPEM, p.ClientKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CAPEM)

	primary := testkeys.New(t)
	srv := server.New(server.Config{
		Keys:            testkeys.NewSource(primary),
		Limits:          server.DefaultLimits,
		MaxMessageBytes: 4 << 20,
		TLS: &tls.Config{
			Certificates: []tls.Certificate{serverCert}, ClientCAs: roots,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		},
		Version: "client-test",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	addr := servetest.Serve(t, srv, server.Listen, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)

	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run("mTLS to "+host, func(t *testing.T) {
			c := dial(t, net.JoinHostPort(host, port), client.WithTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}}))
			enc, err := c.Encrypt(testContext(t), []byte("secret"))
			if err != nil || enc.KeyID != primary.ID() {
				t.Fatalf("Encrypt over TLS = %+v, %v", enc, err)
			}
			dec, err := c.Decrypt(testContext(t), enc.Token)
			if err != nil || string(dec.Plaintext) != "secret" {
				t.Fatalf("Decrypt over TLS = %+v, %v", dec, err)
			}
		})
	}
	refusals := []struct {
		name string
		opts []client.Option
	}{
		{"plaintext", nil},
		{"no client certificate", []client.Option{client.WithTLS(&tls.Config{RootCAs: roots})}},
		{"unknown server CA", []client.Option{client.WithTLS(&tls.Config{Certificates: []tls.Certificate{clientCert}})}},
	}
	for _, r := range refusals {
		t.Run(r.name+" is refused", func(t *testing.T) {
			c := dial(t, addr, append(r.opts, client.WithMaxAttempts(1))...)
			if _, err := c.Status(testContext(t)); status.Code(err) != codes.Unavailable {
				t.Fatalf("Status = %v, want UNAVAILABLE", err)
			}
		})
	}
}
