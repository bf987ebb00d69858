package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// testServer is a real Server on a Unix socket in a temp dir, with a
// client connected to it.
type testServer struct {
	*Server
	conn    *grpc.ClientConn
	client  fernetv1.FernetServiceClient
	primary *fernet.Key
	old     *fernet.Key
	keys    *swappableKeys
}

// swappableKeys is a KeyringSource whose keys a test can replace, as a
// reload would.
type swappableKeys struct{ atomic.Pointer[fernet.Keyring] }

func (k *swappableKeys) Keyring() *fernet.Keyring { return k.Load() }

func newKey(t testing.TB) *fernet.Key {
	t.Helper()
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func startServer(t *testing.T, limits Limits) *testServer {
	t.Helper()
	ts := &testServer{primary: newKey(t), old: newKey(t)}
	ts.keys = &swappableKeys{}
	ts.keys.Store(fernet.NewKeyring(ts.primary, ts.old))
	ts.Server = New(Config{
		Keys:            ts.keys,
		Limits:          limits,
		MaxMessageBytes: 4 << 20,
		Version:         "test",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ts.ObserveKeyReload(ts.keys.Keyring(), nil) // the first load, as keysource.NewReloader records it
	addr := serve(t, ts.Server, "unix://"+filepath.Join(t.TempDir(), "fernet.sock"))
	var err error
	ts.conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.conn.Close() })
	ts.client = fernetv1.NewFernetServiceClient(ts.conn)
	return ts
}

// serve runs srv on addr ("127.0.0.1:0" or "unix://...") until the test
// ends, then shuts it down and checks that Serve returned cleanly. It
// returns the address to dial.
func serve(t *testing.T, srv *Server, addr string) string {
	t.Helper()
	lis, err := Listen(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	if lis.Addr().Network() == "unix" {
		return "unix://" + lis.Addr().String()
	}
	return lis.Addr().String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := contextWithTimeout()
	t.Cleanup(cancel)
	return c
}

// contextWithTimeout bounds every test call, so a hung server fails the
// test rather than stalling it.
func contextWithTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// tokenUnder makes a token with key outside the server, as an app's own
// Python Fernet would have.
func tokenUnder(t *testing.T, key *fernet.Key, plaintext string, timestamp uint64) string {
	t.Helper()
	sealed, err := fernet.NewKeyring(key).EncryptAtTime([]byte(plaintext), timestamp)
	if err != nil {
		t.Fatal(err)
	}
	return sealed.Token
}

// wantReason checks err is INVALID_ARGUMENT with an ErrorInfo of reason,
// and that its message holds none of the secrets.
func wantReason(t *testing.T, err error, reason string, secrets ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("error = %v, want INVALID_ARGUMENT", err)
	}
	var info *errdetails.ErrorInfo
	for _, detail := range st.Details() {
		if i, ok := detail.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.GetReason() != reason || info.GetDomain() != reasons.Domain {
		t.Fatalf("ErrorInfo = %v, want reason %s in domain %s", info, reason, reasons.Domain)
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(st.Message(), secret) {
			t.Fatalf("error message %q leaks a secret", st.Message())
		}
	}
}

// metric reads one series from the server's registry; labels are name,
// value pairs. It fails the test when the series does not exist.
func (ts *testServer) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := ts.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
	series:
		for _, m := range family.GetMetric() {
			have := map[string]string{}
			for _, pair := range m.GetLabel() {
				have[pair.GetName()] = pair.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
