// Package servetest runs a gRPC server in process for one test, and dials
// servers. It does not import server/, so that server's own tests can use
// it too.
package servetest

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Server is what server.Server does to serve and stop.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context)
}

// Serve runs srv on the listener listen(addr, "") makes (server.Listen:
// addr is "127.0.0.1:0" or "unix://...") until the test ends, then shuts it
// down and checks that Serve returned cleanly. It returns the address to
// dial.
func Serve(t testing.TB, srv Server, listen func(addr, socketGroup string) (net.Listener, error), addr string) string {
	t.Helper()
	lis, err := listen(addr, "")
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

// Dial connects to addr without TLS, as the tests' clients do, and closes
// the connection when the test ends.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
