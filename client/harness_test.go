package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// testLimits are small, so that every limit is easy to reach.
var testLimits = server.Limits{MaxPlaintextBytes: 64, MaxBatchItems: 8}

// sidecar is the real server, in process, with a primary and an old key.
type sidecar struct {
	addr    string
	primary *fernet.Key
	old     *fernet.Key
}

// transports are the two kinds of target a client dials.
var transports = []struct {
	name string
	addr func(t *testing.T) string
}{
	{"unix", func(t *testing.T) string { return "unix://" + filepath.Join(t.TempDir(), "fernet.sock") }},
	{"tcp", func(*testing.T) string { return "127.0.0.1:0" }},
}

// startSidecar serves server.New on addr ("127.0.0.1:0" or "unix://...")
// until the test ends, and returns the address to dial.
func startSidecar(t *testing.T, addr string, limits server.Limits) *sidecar {
	t.Helper()
	s := &sidecar{primary: testkeys.New(t), old: testkeys.New(t)}
	srv := server.New(server.Config{
		Keys:            testkeys.NewSource(s.primary, s.old),
		Limits:          limits,
		MaxMessageBytes: 4 << 20,
		Version:         "client-test",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	s.addr = servetest.Serve(t, srv, server.Listen, addr)
	return s
}

func dial(t *testing.T, target string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func now() uint64 { return uint64(time.Now().Unix()) }

// blackHole accepts TCP connections and never answers, so that an RPC to
// it waits until its deadline.
func blackHole(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		for _, conn := range conns {
			conn.Close()
		}
	})
	return lis.Addr().String()
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}
