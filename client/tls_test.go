package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// pki is a test CA with a server certificate for 127.0.0.1 and localhost,
// and a client certificate, all as PEM.
type pki struct {
	caPEM                    []byte
	serverCertPEM, serverKey []byte
	clientCertPEM, clientKey []byte
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, caDER := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "fernet-sidecar test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caPEM: pemBlock("CERTIFICATE", caDER)}
	serverKey, serverDER := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "fernet-sidecar"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	p.serverCertPEM, p.serverKey = pemBlock("CERTIFICATE", serverDER), keyPEM(t, serverKey)
	clientKey, clientDER := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "app"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	p.clientCertPEM, p.clientKey = pemBlock("CERTIFICATE", clientDER), keyPEM(t, clientKey)
	return p
}

var serial int64

// issue signs template with parent's key (itself when parent is nil).
func issue(t *testing.T, template, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	template.SerialNumber = big.NewInt(serial)
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func keyPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

// write puts the PEM files in dir for the sidecar binary and the Python
// tests.
func (p *pki) write(t *testing.T, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	files := []struct {
		name string
		data []byte
		path *string
	}{
		{"ca.pem", p.caPEM, &ca}, {"server.pem", p.serverCertPEM, &serverCert}, {"server-key.pem", p.serverKey, &serverKey},
		{"client.pem", p.clientCertPEM, &clientCert}, {"client-key.pem", p.clientKey, &clientKey},
	}
	for _, f := range files {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, serverCert, serverKey, clientCert, clientKey
}

// TestTLS dials a real server that requires TLS and a client certificate.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	serverCert, err := tls.X509KeyPair(p.serverCertPEM, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.X509KeyPair(p.clientCertPEM, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.caPEM)

	primary := newKey(t)
	srv := server.New(server.Config{
		Keys:            staticKeys{fernet.NewKeyring(primary)},
		Limits:          server.DefaultLimits,
		MaxMessageBytes: 4 << 20,
		TLS: &tls.Config{
			Certificates: []tls.Certificate{serverCert}, ClientCAs: roots,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		},
		Version: "client-test",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	lis, err := server.Listen("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	_, port, _ := net.SplitHostPort(lis.Addr().String())

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
			c := dial(t, lis.Addr().String(), append(r.opts, client.WithMaxAttempts(1))...)
			if _, err := c.Status(testContext(t)); status.Code(err) != codes.Unavailable {
				t.Fatalf("Status = %v, want UNAVAILABLE", err)
			}
		})
	}
}
