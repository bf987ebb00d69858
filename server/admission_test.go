package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// admissionServer serves with the given bounds and returns its server
// (for its metrics), a client and the connection.
func admissionServer(t *testing.T, bounds Admission) (*Server, fernetv1.FernetServiceClient, *grpc.ClientConn) {
	t.Helper()
	keys := testkeys.NewSource(testkeys.New(t))
	srv := New(Config{Keys: keys, Limits: DefaultLimits, MaxMessageBytes: 4 << 20, Version: "test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Admission: bounds})
	addr := servetest.Serve(t, srv, Listen, "unix://"+filepath.Join(t.TempDir(), "fernet.sock"))
	conn := servetest.Dial(t, addr)
	return srv, fernetv1.NewFernetServiceClient(conn), conn
}

// holdBatch opens an EncryptBatch call that sends no message, so that it
// sits at admission until cancel is called.
func holdBatch(t *testing.T, conn *grpc.ClientConn) (cancel func()) {
	return holdCall(t, conn, "EncryptBatch")
}

// holdCall opens a call of method that sends no message, so that it is in
// flight until cancel is called.
func holdCall(t *testing.T, conn *grpc.ClientConn, method string) (cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/fernet.v1.FernetService/"+method); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let its headers reach the server
	return cancel
}

func encryptBatch(client fernetv1.FernetServiceClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := client.EncryptBatch(ctx, &fernetv1.EncryptBatchRequest{Plaintexts: [][]byte{[]byte("a"), []byte("b")}})
	return err
}

// TestAdmissionGivesBackWhatACallHeld: with room for one call of each
// kind, call after call gets in.
func TestAdmissionGivesBackWhatACallHeld(t *testing.T) {
	_, client, _ := admissionServer(t, Admission{MaxBatches: 1, MaxBatchBytes: 4 << 20, MaxBatchItems: 2, MaxCalls: 1})
	for i := range 50 {
		if err := encryptBatch(client, 5*time.Second); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if _, err := client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("a")}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestAdmissionRefusesABatchPastMaxBatches(t *testing.T) {
	srv, client, conn := admissionServer(t, Admission{MaxBatches: 1, MaxBatchBytes: 4 << 20, MaxBatchItems: 100, MaxCalls: 64})
	release := holdBatch(t, conn)
	err := encryptBatch(client, 5*time.Second)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || errorReason(st) != reasons.TooManyBatches {
		t.Fatalf("a batch past MaxBatches = %v, want RESOURCE_EXHAUSTED %s", err, reasons.TooManyBatches)
	}
	if got := metricOf(t, srv, "fernet_admission_rejected_total", "reason", "batches"); got != 1 {
		t.Fatalf("fernet_admission_rejected_total{reason=batches} = %v, want 1", got)
	}
	if _, err := client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("a")}); err != nil {
		t.Fatalf("a small call while batches are full: %v", err)
	}
	release()
	waitFor(t, func() bool { return encryptBatch(client, 5*time.Second) == nil })
}

func TestAdmissionRefusesACallPastMaxCalls(t *testing.T) {
	srv, client, conn := admissionServer(t, Admission{MaxBatches: 4, MaxBatchBytes: 4 << 20, MaxBatchItems: 100, MaxCalls: 1})
	release := holdCall(t, conn, "Encrypt")
	_, err := client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("a")})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || errorReason(st) != reasons.TooManyCalls {
		t.Fatalf("a call past MaxCalls = %v, want RESOURCE_EXHAUSTED %s", err, reasons.TooManyCalls)
	}
	if got := metricOf(t, srv, "fernet_admission_rejected_total", "reason", "calls"); got != 1 {
		t.Fatalf("fernet_admission_rejected_total{reason=calls} = %v, want 1", got)
	}
	release()
	waitFor(t, func() bool {
		_, err := client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("a")})
		return err == nil
	})
}

// TestAdmissionBoundsTheWaitForAMessage: at the default sizing, calls
// that hold every byte of their kind and send nothing make the next call
// of that kind wait, unread, but only until the holders are refused for
// sending no message within MessageReadTimeout.
func TestAdmissionBoundsTheWaitForAMessage(t *testing.T) {
	const readTimeout = time.Second
	for _, tc := range []struct {
		method string
		reason string
		call   func(fernetv1.FernetServiceClient, time.Duration) error
	}{
		{"EncryptBatch", reasons.TooManyBatches, encryptBatch},
		{"Encrypt", reasons.TooManyCalls, func(client fernetv1.FernetServiceClient, timeout time.Duration) error {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte("a")})
			return err
		}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			bounds := AdmissionFor(64<<20, 4<<20, DefaultLimits)
			bounds.MessageReadTimeout = readTimeout
			srv, client, conn := admissionServer(t, bounds)
			var held []grpc.ClientStream
			for range 2 { // two 4 MiB messages fill 8 MiB; one connection reads one at a time
				stream, err := dialLike(t, conn).NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/fernet.v1.FernetService/"+tc.method)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, stream)
			}
			time.Sleep(100 * time.Millisecond) // let their headers reach the server
			if err := tc.call(client, 200*time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("a call while others hold every byte = %v, want it to wait past its deadline", err)
			}
			started := time.Now()
			if err := tc.call(client, readTimeout+3*time.Second); err != nil {
				t.Fatalf("a call after %v held by streams that send nothing: %v", time.Since(started), err)
			}
			for _, stream := range held {
				err := stream.RecvMsg(new(fernetv1.EncryptResponse))
				if st := status.Convert(err); st.Code() != codes.ResourceExhausted || errorReason(st) != tc.reason {
					t.Errorf("a call that sent no message = %v, want RESOURCE_EXHAUSTED with reason %s", err, tc.reason)
				}
			}
			if got := metricOf(t, srv, "fernet_admission_rejected_total", "reason", "slow_messages"); got != 2 {
				t.Errorf("fernet_admission_rejected_total{reason=slow_messages} = %v, want 2", got)
			}
		})
	}
}

// TestAdmissionKeepsOneConnectionsIdleCallsToIt: however many calls one
// connection opens without sending their message, they take one message's
// room: another connection's calls get in.
func TestAdmissionKeepsOneConnectionsIdleCallsToIt(t *testing.T) {
	_, client, conn := admissionServer(t, AdmissionFor(64<<20, 4<<20, DefaultLimits))
	idle := dialLike(t, conn)
	for _, method := range []string{"Encrypt", "Decrypt", "EncryptBatch", "DecryptBatch"} {
		for range 4 {
			if _, err := idle.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/fernet.v1.FernetService/"+method); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // let their headers reach the server
	if err := encryptBatch(client, 2*time.Second); err != nil {
		t.Fatalf("a batch on another connection: %v", err)
	}
	if _, err := client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: []byte("a")}); err != nil {
		t.Fatalf("a call on another connection: %v", err)
	}
}

// dialLike opens another connection to conn's server.
func dialLike(t *testing.T, conn *grpc.ClientConn) *grpc.ClientConn {
	t.Helper()
	return servetest.Dial(t, conn.Target())
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatal("still not so after 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metricOf(t *testing.T, srv *Server, name string, labels ...string) float64 {
	t.Helper()
	return (&testServer{Server: srv}).metric(t, name, labels...)
}

// TestAdmissionNeedsGRPCsStream: the read deadline ends a late call through
// gRPC's server stream; a call without one (were gRPC to change what it
// puts in the context) is refused whole, not served without a deadline.
func TestAdmissionNeedsGRPCsStream(t *testing.T) {
	a := newAdmission(AdmissionFor(64<<20, 4<<20, DefaultLimits), 4<<20, prometheus.NewRegistry())
	served := false
	handler := a.gate(a.callLane, func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
		served = true
		return nil, nil
	})
	_, err := handler(nil, context.Background(), func(any) error { return nil }, nil)
	if status.Code(err) != codes.Internal || served {
		t.Fatalf("a call without gRPC's stream = %v (served: %v), want INTERNAL, unserved", err, served)
	}
}
