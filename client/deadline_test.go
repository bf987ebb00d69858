package client_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// deadlineRecorder is a client interceptor that records the deadline each
// RPC is sent with.
type deadlineRecorder struct {
	mu        sync.Mutex
	deadlines []time.Time // zero for none
}

func (r *deadlineRecorder) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	deadline, _ := ctx.Deadline()
	r.mu.Lock()
	r.deadlines = append(r.deadlines, deadline)
	r.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (r *deadlineRecorder) last() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadlines[len(r.deadlines)-1]
}

// TestDeadlineSentWithEachCall checks which deadline reaches the real
// server: the client's default when the context has none, else the
// context's own.
func TestDeadlineSentWithEachCall(t *testing.T) {
	s := startSidecar(t, transports[1].addr(t), testLimits)
	token := testkeys.Token(t, s.primary, "secret", now())
	calls := map[string]func(*client.Client, context.Context) error{
		"Encrypt":   func(c *client.Client, ctx context.Context) error { _, err := c.Encrypt(ctx, []byte("x")); return err },
		"Decrypt":   func(c *client.Client, ctx context.Context) error { _, err := c.Decrypt(ctx, token); return err },
		"ReEncrypt": func(c *client.Client, ctx context.Context) error { _, err := c.ReEncrypt(ctx, token); return err },
		"Status":    func(c *client.Client, ctx context.Context) error { _, err := c.Status(ctx); return err },
		"EncryptBatch": func(c *client.Client, ctx context.Context) error {
			_, err := c.EncryptBatch(ctx, [][]byte{{1}})
			return err
		},
		"DecryptBatch": func(c *client.Client, ctx context.Context) error {
			_, err := c.DecryptBatch(ctx, []string{token})
			return err
		},
		"ReEncryptBatch": func(c *client.Client, ctx context.Context) error {
			_, err := c.ReEncryptBatch(ctx, []string{token})
			return err
		},
	}
	tests := []struct {
		name       string
		timeout    client.Option // nil: the default
		ctxTimeout time.Duration // 0: no deadline on the context
		want       time.Duration // 0: no deadline sent
	}{
		{"no context deadline gets the default", nil, 0, client.DefaultTimeout},
		{"no context deadline gets WithTimeout", client.WithTimeout(2 * time.Second), 0, 2 * time.Second},
		{"a shorter context deadline is kept", nil, time.Second, time.Second},
		{"a longer context deadline is kept", nil, time.Minute, time.Minute},
		{"WithTimeout(0) sends none", client.WithTimeout(0), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recorder := &deadlineRecorder{}
			opts := []client.Option{client.WithDialOptions(grpc.WithUnaryInterceptor(recorder.intercept))}
			if tt.timeout != nil {
				opts = append(opts, tt.timeout)
			}
			c := dial(t, s.addr, opts...)
			for name, call := range calls {
				started := time.Now()
				if err := call(c, callerContext(t, tt.ctxTimeout)); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				deadline := recorder.last()
				if tt.want == 0 {
					if !deadline.IsZero() {
						t.Errorf("%s sent deadline %v, want none", name, deadline)
					}
					continue
				}
				if left := deadline.Sub(started); left > tt.want+time.Since(started) || left < tt.want-time.Second {
					t.Errorf("%s sent a deadline %v after the call started, want %v", name, left, tt.want)
				}
			}
		})
	}
}

// callerContext is a caller's context: with a deadline timeout from now,
// or none when timeout is 0. It is cancelled when the test ends.
func callerContext(t *testing.T, timeout time.Duration) context.Context {
	if timeout == 0 {
		return context.Background()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// TestDeadlineEndsAHungCall: a server that accepts and never answers
// holds an RPC until its deadline, the client's default or the caller's
// shorter one, and no longer.
func TestDeadlineEndsAHungCall(t *testing.T) {
	addr := blackHole(t)
	tests := []struct {
		name       string
		timeout    time.Duration
		ctxTimeout time.Duration
		want       time.Duration
	}{
		{"client default", 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"shorter caller deadline", time.Minute, 200 * time.Millisecond, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr, client.WithTimeout(tt.timeout))
			ctx := callerContext(t, tt.ctxTimeout)
			started := time.Now()
			_, err := c.Decrypt(ctx, "gAAAAA")
			took := time.Since(started)
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("Decrypt from a server that never answers = %v, want DEADLINE_EXCEEDED", err)
			}
			if took < tt.want || took > tt.want+2*time.Second {
				t.Fatalf("Decrypt took %v, want about %v", took, tt.want)
			}
		})
	}
}

// TestWaitForReady: with WithWaitForReady a call made before the sidecar
// listens waits for it, as an app that starts before its sidecar needs.
func TestWaitForReady(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "late.sock")
	c := dial(t, addr, client.WithWaitForReady(), client.WithTimeout(20*time.Second))
	type result struct {
		status client.Status
		err    error
	}
	done := make(chan result, 1)
	go func() {
		st, err := c.Status(context.Background())
		done <- result{st, err}
	}()
	time.Sleep(300 * time.Millisecond)
	s := startSidecar(t, addr, testLimits)
	if r := <-done; r.err != nil || r.status.PrimaryKeyID != s.primary.ID() {
		t.Fatalf("Status = %+v, %v; want it to wait for the sidecar", r.status, r.err)
	}

	// Without it, the call fails at once.
	eager := dial(t, "unix://"+filepath.Join(t.TempDir(), "absent.sock"), client.WithMaxAttempts(1))
	if _, err := eager.Status(context.Background()); status.Code(err) != codes.Unavailable {
		t.Fatalf("Status with no sidecar and no wait = %v, want UNAVAILABLE", err)
	}
}
