package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHealthAndReadinessFollowShutdown(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	health := healthpb.NewHealthClient(ts.conn)
	web := httptest.NewServer(ts.HTTPHandler())
	defer web.Close()

	for _, service := range []string{"", "fernet.v1.FernetService"} {
		resp, err := health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q = %v, %v; want SERVING", service, resp, err)
		}
	}
	if code := httpStatus(t, web.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d while serving, want 200", code)
	}

	watch, err := health.Watch(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watched status = %v, %v", first, err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go ts.Shutdown(shutdownCtx)
	if next, err := watch.Recv(); err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("status during shutdown = %v, %v; want NOT_SERVING", next, err)
	}
	if code := httpStatus(t, web.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d during shutdown, want 503", code)
	}
	if code := httpStatus(t, web.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d during shutdown, want 200: the process is still alive", code)
	}
}

func TestShutdownCutsOffCallsAfterItsDeadline(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	health := healthpb.NewHealthClient(ts.conn)
	// A Watch stream never ends by itself, so it holds GracefulStop open.
	watch, err := health.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { ts.Shutdown(shutdownCtx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after its deadline")
	}
}

func TestMetricsExposition(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	web := httptest.NewServer(ts.HTTPHandler())
	defer web.Close()
	resp, err := http.Get(web.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`fernet_decrypt_failures_total{reason="malformed"} 0`,
		`fernet_decrypt_failures_total{reason="invalid_signature"} 0`,
		`fernet_decrypt_failures_total{reason="expired"} 0`,
		`fernet_decrypt_failures_total{reason="future_timestamp"} 0`,
		`fernet_decrypt_failures_total{reason="token_too_large"} 0`,
		`fernet_decryptions_total{key_role="primary"} 0`,
		`fernet_decryptions_total{key_role="decrypt_only"} 0`,
		`fernet_operations_total{operation="reencrypt",outcome="error"} 0`,
		`fernet_operation_duration_seconds_bucket{operation="decrypt",le="+Inf"} 0`,
		`fernet_operations_total{operation="verify_totp",outcome="error"} 0`,
		`fernet_operation_duration_seconds_bucket{operation="verify_totp",le="+Inf"} 0`,
		`fernet_totp_verifications_total{outcome="valid"} 0`,
		`fernet_totp_verifications_total{outcome="invalid_code"} 0`,
		`fernet_totp_verifications_total{outcome="replayed"} 0`,
		`fernet_method_denied_total{method="Decrypt"} 0`,
		`fernet_key_info{key_id="` + ts.primary.ID() + `",role="primary"} 1`,
		`fernet_key_info{key_id="` + ts.old.ID() + `",role="decrypt_only"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Decrypt",grpc_service="fernet.v1.FernetService",grpc_type="unary"} 0`,
		`grpc_server_handling_seconds_bucket{grpc_method="ReEncryptBatch"`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, key := range []string{ts.primary.Encode(), ts.old.Encode()} {
		if strings.Contains(text, key) {
			t.Fatal("/metrics contains a key")
		}
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
