package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
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
	keys    *testkeys.Source
}

func startServer(t testing.TB, limits Limits) *testServer {
	t.Helper()
	ts := &testServer{primary: testkeys.New(t), old: testkeys.New(t)}
	ts.keys = testkeys.NewSource(ts.primary, ts.old)
	ts.Server = New(Config{
		Keys:            ts.keys,
		Limits:          limits,
		MaxMessageBytes: 4 << 20,
		Version:         "test",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ts.ObserveKeyReload(ts.keys.Keyring(), nil) // the first load, as keysource.NewReloader records it
	addr := servetest.Serve(t, ts.Server, Listen, "unix://"+filepath.Join(t.TempDir(), "fernet.sock"))
	ts.conn = servetest.Dial(t, addr)
	ts.client = fernetv1.NewFernetServiceClient(ts.conn)
	return ts
}

// newService is a Service alone, without gRPC, on one new key and a
// registry of its own.
func newService(t testing.TB) *Service {
	return NewService(testkeys.NewSource(testkeys.New(t)), DefaultLimits, NewMetrics(prometheus.NewRegistry()), "test")
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
