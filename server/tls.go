package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// LoadTLS builds the API's TLS settings from PEM files. With clientCAFile
// set, every client must present a certificate signed by it (mTLS), and,
// when allowedClients names any, one whose identity is among them: a URI
// SAN (e.g. a SPIFFE id), a DNS SAN, or the subject's common name.
//
// The files are read again, for new connections, whenever one of them
// changes (cert-manager, a kubelet-updated Secret), as the keys are. A
// change that does not load keeps the settings in use until it does, and
// is logged to logger once.
func LoadTLS(logger *slog.Logger, certFile, keyFile, clientCAFile string, allowedClients ...string) (*tls.Config, error) {
	files := &tlsFiles{cert: certFile, key: keyFile, clientCA: clientCAFile, allowed: allowedClients, logger: logger}
	if _, err := files.current(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return files.current() },
	}, nil
}

// tlsFiles is the TLS settings loaded from their files, and when.
type tlsFiles struct {
	cert, key, clientCA string
	allowed             []string
	logger              *slog.Logger

	mu       sync.Mutex
	loaded   *tls.Config
	loadedAt string // the files' fileStamp when loaded
	// failedAt is the files' fileStamp when they last failed to load:
	// they are not read again, at every handshake, until they change.
	failedAt string
}

// current is the settings of the files as they are now, loaded again if
// they changed since the last load; if that fails, the last good ones.
func (f *tlsFiles) current() (*tls.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamp := fileStamp(f.cert, f.key, f.clientCA)
	if f.loaded != nil && (stamp == f.loadedAt || stamp == f.failedAt) {
		return f.loaded, nil
	}
	cfg, err := f.load()
	if err != nil {
		if f.loaded == nil {
			return nil, err
		}
		// The error names the file and what is wrong, never its contents.
		f.logger.Warn("TLS files changed but do not load; keeping the certificates in use", "audit", true, "error", err.Error())
		f.failedAt = stamp
		return f.loaded, nil
	}
	f.loaded, f.loadedAt = cfg, stamp
	return cfg, nil
}

func (f *tlsFiles) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", f.cert, f.key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.clientCA == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(f.clientCA)
	if err != nil {
		return nil, fmt.Errorf("read client CA %s: %w", f.clientCA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("client CA " + f.clientCA + " holds no PEM certificate")
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if len(f.allowed) > 0 {
		cfg.VerifyConnection = f.verifyClient
	}
	return cfg, nil
}

// verifyClient accepts a verified client certificate only if one of its
// identities is allowed.
func (f *tlsFiles) verifyClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	identities := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, uri := range leaf.URIs {
		identities = append(identities, uri.String())
	}
	for _, identity := range identities {
		if identity != "" && slices.Contains(f.allowed, identity) {
			return nil
		}
	}
	return fmt.Errorf("client certificate %q is not among the allowed clients", leaf.Subject.CommonName)
}

// fileStamp tells whether files changed: their inode, size and time of
// change, following links (a Secret's files are links that move).
func fileStamp(paths ...string) string {
	var stamp strings.Builder
	for _, path := range paths {
		info, err := os.Stat(path)
		if path == "" || err != nil {
			stamp.WriteString("-;")
			continue
		}
		inode := uint64(0)
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			inode = st.Ino
		}
		fmt.Fprintf(&stamp, "%d:%d:%d;", inode, info.Size(), info.ModTime().UnixNano())
	}
	return stamp.String()
}
