// Package testpki makes a throwaway certificate authority with a server
// and a client certificate, for the TLS tests of every package.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a test CA with a server certificate for 127.0.0.1 and localhost,
// and a client certificate, all as PEM.
type PKI struct {
	CAPEM                       []byte
	ServerCertPEM, ServerKeyPEM []byte
	ClientCertPEM, ClientKeyPEM []byte
}

// New makes a new CA and its two certificates.
func New(t testing.TB) *PKI {
	t.Helper()
	caKey, caDER := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "fernet-sidecar test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{CAPEM: pemBlock("CERTIFICATE", caDER)}
	serverKey, serverDER := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "fernet-sidecar"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	p.ServerCertPEM, p.ServerKeyPEM = pemBlock("CERTIFICATE", serverDER), keyPEM(t, serverKey)
	clientKey, clientDER := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "app"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	p.ClientCertPEM, p.ClientKeyPEM = pemBlock("CERTIFICATE", clientDER), keyPEM(t, clientKey)
	return p
}

var serial atomic.Int64

// issue signs template with parent's key (itself when parent is nil).
func issue(t testing.TB, template, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template.SerialNumber = big.NewInt(serial.Add(1))
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

func keyPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

// Write puts the PEM files in dir, for processes that read files, and
// returns their paths.
func (p *PKI) Write(t testing.TB, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	files := []struct {
		name string
		data []byte
		path *string
	}{
		{"ca.pem", p.CAPEM, &ca}, {"server.pem", p.ServerCertPEM, &serverCert}, {"server-key.pem", p.ServerKeyPEM, &serverKey},
		{"client.pem", p.ClientCertPEM, &clientCert}, {"client-key.pem", p.ClientKeyPEM, &clientKey},
	}
	for _, f := range files {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, serverCert, serverKey, clientCert, clientKey
}
