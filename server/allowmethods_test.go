package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

func TestParseMethods(t *testing.T) {
	got, err := ParseMethods(" Encrypt, GetStatus,Encrypt ")
	if err != nil || !slices.Equal(got, []string{"Encrypt", "GetStatus"}) {
		t.Errorf("ParseMethods = %v, %v; want [Encrypt GetStatus]", got, err)
	}
	if got, err := ParseMethods(strings.Join(FernetMethods(), ",")); err != nil || len(got) != 11 {
		t.Errorf("ParseMethods(all) = %v, %v; want the 11 methods", got, err)
	}
	for _, bad := range []string{"", "encrypt", "Encrypt,,Decrypt", "fernet.v1.FernetService/Encrypt", "Check"} {
		if _, err := ParseMethods(bad); err == nil {
			t.Errorf("ParseMethods(%q) took it", bad)
		}
	}
}

// TestAllowMethods serves the TOTP-only profile: its methods work, the
// others fail with PERMISSION_DENIED and METHOD_NOT_ALLOWED, each refusal
// counted and audit-logged, and health still answers.
func TestAllowMethods(t *testing.T) {
	allowed, err := ParseMethods(testenv.TOTPOnlyProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	keys := testkeys.NewSource(testkeys.New(t))
	srv := &testServer{Server: New(Config{
		Keys: keys, Limits: DefaultLimits, MaxMessageBytes: 4 << 20, Version: "test",
		AllowedMethods: allowed, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})}
	addr := servetest.Serve(t, srv.Server, Listen, "127.0.0.1:0")
	conn := servetest.Dial(t, addr)
	client := fernetv1.NewFernetServiceClient(conn)

	sealed, err := client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("JBSWY3DPEHPK3PXP")})
	if err != nil {
		t.Fatalf("Encrypt, which the profile allows: %v", err)
	}
	if _, err := client.EncryptBatch(ctx(t), &fernetv1.EncryptBatchRequest{Plaintexts: [][]byte{[]byte("JBSWY3DPEHPK3PXP")}}); err != nil {
		t.Fatalf("EncryptBatch, which the profile allows: %v", err)
	}
	if _, err := client.InspectBatch(ctx(t), &fernetv1.InspectBatchRequest{Tokens: []string{sealed.GetToken()}}); err != nil {
		t.Fatalf("InspectBatch, which the profile allows: %v", err)
	}
	refused := []func() error{
		func() error {
			_, err := client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: sealed.GetToken()})
			return err
		},
		func() error {
			_, err := client.DecryptBatch(ctx(t), &fernetv1.DecryptBatchRequest{Tokens: []string{sealed.GetToken()}})
			return err
		},
	}
	for _, call := range refused {
		st := status.Convert(call())
		reason := errorReason(st)
		if st.Code() != codes.PermissionDenied || reason != reasons.MethodNotAllowed {
			t.Fatalf("a method left out: %v (reason %q), want PERMISSION_DENIED with METHOD_NOT_ALLOWED", st.Err(), reason)
		}
	}
	for method, want := range map[string]float64{"Decrypt": 1, "DecryptBatch": 1, "EncryptBatch": 0, "Encrypt": 0, "VerifyTOTP": 0} {
		if got := srv.metric(t, "fernet_method_denied_total", "method", method); got != want {
			t.Errorf("fernet_method_denied_total{method=%s} = %v, want %v", method, got, want)
		}
	}
	status, err := client.GetStatus(ctx(t), &fernetv1.GetStatusRequest{})
	if err != nil || !slices.Equal(status.GetAllowedMethods(), allowed) {
		t.Errorf("GetStatus = %v, %v; want allowed methods %v", status, err, allowed)
	}
	health, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check = %v, %v; want SERVING", health, err)
	}

	var auditLines int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil || entry["audit"] != true {
			continue
		}
		auditLines++
		if entry["reason"] != reasons.MethodNotAllowed || !strings.Contains(entry["method"].(string), "cryptBatch") && !strings.HasSuffix(entry["method"].(string), "/Decrypt") ||
			!strings.HasPrefix(entry["peer"].(string), "tcp:127.0.0.1:") {
			t.Errorf("audit line %v, want the refused method, its peer and METHOD_NOT_ALLOWED", entry)
		}
	}
	if auditLines != len(refused) || strings.Contains(logs.String(), sealed.GetToken()) {
		t.Errorf("%d audit lines, want %d, none with the token:\n%s", auditLines, len(refused), &logs)
	}
}

// TestDeniedMethodIsNotRead: a method left out is refused before
// admission and before its message is read, so it neither waits for room
// nor takes any, even when it sends no message at all.
func TestDeniedMethodIsNotRead(t *testing.T) {
	keys := testkeys.NewSource(testkeys.New(t))
	srv := New(Config{
		Keys: keys, Limits: DefaultLimits, MaxMessageBytes: 4 << 20, Version: "test",
		AllowedMethods: []string{"InspectBatch"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Admission: Admission{MaxBatches: 1, MaxBatchBytes: 4 << 20, MaxBatchItems: 100, MaxCalls: 64},
	})
	conn := servetest.Dial(t, servetest.Serve(t, srv, Listen, "127.0.0.1:0"))
	release := holdCall(t, conn, "InspectBatch") // every batch of admission
	defer release()
	for _, method := range []string{"DecryptBatch", "Decrypt"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/fernet.v1.FernetService/"+method)
		if err != nil {
			t.Fatal(err)
		}
		err = stream.RecvMsg(new(fernetv1.DecryptResponse))
		cancel()
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || errorReason(st) != reasons.MethodNotAllowed {
			t.Errorf("%s, sending no message while batches are full = %v, want PERMISSION_DENIED %s", method, err, reasons.MethodNotAllowed)
		}
	}
}
