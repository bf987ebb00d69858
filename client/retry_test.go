package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// flaky stands in front of the real sidecar: it fails the first failures
// attempts of each call with a status of code, then forwards to the
// sidecar. It counts attempts by method.
type flaky struct {
	fernetv1.UnimplementedFernetServiceServer
	next fernetv1.FernetServiceClient

	mu       sync.Mutex
	code     codes.Code
	failures int // -1: always
	attempts map[string]int
}

func (f *flaky) attempt(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[method]++
	if f.failures < 0 || f.attempts[method] <= f.failures {
		return status.Error(f.code, "injected failure")
	}
	return nil
}

func (f *flaky) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[method]
}

func (f *flaky) Decrypt(ctx context.Context, req *fernetv1.DecryptRequest) (*fernetv1.DecryptResponse, error) {
	if err := f.attempt("Decrypt"); err != nil {
		return nil, err
	}
	return f.next.Decrypt(ctx, req)
}

func (f *flaky) EncryptBatch(ctx context.Context, req *fernetv1.EncryptBatchRequest) (*fernetv1.EncryptBatchResponse, error) {
	if err := f.attempt("EncryptBatch"); err != nil {
		return nil, err
	}
	return f.next.EncryptBatch(ctx, req)
}

// startFlaky serves a flaky front for the real sidecar s on the loopback.
func startFlaky(t *testing.T, s *sidecar, code codes.Code, failures int) (*flaky, string) {
	t.Helper()
	upstream, err := client.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { upstream.Close() })
	f := &flaky{next: fernetv1.NewFernetServiceClient(upstream.Conn()), code: code, failures: failures, attempts: map[string]int{}}
	srv := grpc.NewServer()
	fernetv1.RegisterFernetServiceServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

// TestRetries: UNAVAILABLE is retried up to the attempt limit, and nothing
// else is retried: not INVALID_ARGUMENT from the real sidecar, not other
// codes.
func TestRetries(t *testing.T) {
	s := startSidecar(t, transports[0].addr(t), server.DefaultLimits)
	good := testkeys.Token(t, s.primary, "secret", now())
	tests := []struct {
		name         string
		code         codes.Code
		failures     int
		opts         []client.Option
		token        string
		wantCode     codes.Code
		wantAttempts int
	}{
		{"one UNAVAILABLE is retried", codes.Unavailable, 1, nil, good, codes.OK, 2},
		{"two UNAVAILABLE are retried", codes.Unavailable, 2, nil, good, codes.OK, 3},
		{"UNAVAILABLE until the attempts run out", codes.Unavailable, -1, nil, good, codes.Unavailable, client.DefaultMaxAttempts},
		{"WithMaxAttempts(5)", codes.Unavailable, 4, []client.Option{client.WithMaxAttempts(5)}, good, codes.OK, 5},
		{"WithMaxAttempts(1) turns retries off", codes.Unavailable, 1, []client.Option{client.WithMaxAttempts(1)}, good, codes.Unavailable, 1},
		{"a bad token is not retried", codes.OK, 0, nil, "gAAAAA-not-a-token", codes.InvalidArgument, 1},
		{"INTERNAL is not retried", codes.Internal, 1, nil, good, codes.Internal, 1},
		{"RESOURCE_EXHAUSTED is not retried", codes.ResourceExhausted, 1, nil, good, codes.ResourceExhausted, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, addr := startFlaky(t, s, tt.code, tt.failures)
			c := dial(t, addr, tt.opts...)
			dec, err := c.Decrypt(testContext(t), tt.token)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("Decrypt = %v, want %v", err, tt.wantCode)
			}
			if err == nil && string(dec.Plaintext) != "secret" {
				t.Fatalf("Decrypt = %q", dec.Plaintext)
			}
			if tt.wantCode == codes.InvalidArgument && !errors.Is(err, client.ErrMalformed) {
				t.Fatalf("Decrypt = %v, want ErrMalformed", err)
			}
			if got := f.count("Decrypt"); got != tt.wantAttempts {
				t.Fatalf("%d attempts, want %d", got, tt.wantAttempts)
			}
		})
	}

	t.Run("a batch of 1 MiB is retried whole", func(t *testing.T) {
		f, addr := startFlaky(t, s, codes.Unavailable, 1)
		c := dial(t, addr)
		plaintexts := make([][]byte, 16)
		for i := range plaintexts {
			plaintexts[i] = make([]byte, 64<<10)
		}
		results, err := c.EncryptBatch(testContext(t), plaintexts)
		if err != nil || len(results) != len(plaintexts) {
			t.Fatalf("EncryptBatch = %d results, %v", len(results), err)
		}
		for i, r := range results {
			if r.Err != nil {
				t.Fatalf("item %d: %v", i, r.Err)
			}
		}
		if got := f.count("EncryptBatch"); got != 2 {
			t.Fatalf("%d attempts, want 2", got)
		}
	})
}
