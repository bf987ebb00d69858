package server

import (
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

func TestGRPCMetricsCountEveryUnaryCall(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	decrypt := []string{"grpc_type", "unary", "grpc_service", "fernet.v1.FernetService", "grpc_method", "Decrypt"}
	withCode := func(code codes.Code) []string { return append(decrypt[:6:6], "grpc_code", code.String()) }
	for _, series := range [][]string{withCode(codes.OK), withCode(codes.InvalidArgument), withCode(codes.Unauthenticated)} {
		if got := ts.metric(t, "grpc_server_handled_total", series...); got != 0 {
			t.Fatalf("grpc_server_handled_total%v = %v before any call, want a series at 0", series, got)
		}
	}

	token := testkeys.Token(t, ts.primary, "secret", 1)
	if _, err := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: token}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: "not a token"}); err == nil {
			t.Fatal("Decrypt of garbage succeeded")
		}
	}
	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"grpc_server_started_total", decrypt, 3},
		{"grpc_server_msg_received_total", decrypt, 3},
		{"grpc_server_msg_sent_total", decrypt, 1},
		{"grpc_server_handled_total", withCode(codes.OK), 1},
		{"grpc_server_handled_total", withCode(codes.InvalidArgument), 2},
		{"grpc_server_handling_seconds", decrypt, 3},
		{"grpc_server_started_total", []string{"grpc_method", "Encrypt"}, 0},
	} {
		if got := ts.metric(t, want.name, want.labels...); got != want.value {
			t.Errorf("%s%v = %v, want %v", want.name, want.labels, got, want.value)
		}
	}

	// The health check is a unary method of another service.
	if _, err := healthpb.NewHealthClient(ts.conn).Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	check := []string{"grpc_service", "grpc.health.v1.Health", "grpc_method", "Check", "grpc_code", "OK"}
	if got := ts.metric(t, "grpc_server_handled_total", check...); got != 1 {
		t.Errorf("grpc_server_handled_total%v = %v, want 1", check, got)
	}
}
