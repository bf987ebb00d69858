package client_test

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

var allSentinels = []error{
	client.ErrMalformed, client.ErrInvalidSignature, client.ErrExpired, client.ErrFutureTimestamp,
	client.ErrTokenTooLarge, client.ErrPlaintextTooLarge, client.ErrBatchTooLarge, client.ErrInternal,
	client.ErrTooManyBatches, client.ErrTooManyCalls,
}

// TestErrorReasons makes the real server refuse input for every reason,
// in a unary call and as a batch item, and checks that errors.Is matches
// the reason's sentinel and no other, that ErrInvalidToken matches exactly
// the token reasons, and that the gRPC status stays reachable.
func TestErrorReasons(t *testing.T) {
	s := startSidecar(t, transports[0].addr(t), testLimits)
	c := dial(t, s.addr)
	ctx := testContext(t)
	ttl := client.WithTTL(time.Minute)
	tooLargeToken := "gAAAAA" + strings.Repeat("A", 4096)

	tests := []struct {
		reason    string
		sentinel  error
		badToken  bool
		unary     func() error
		batchItem func() (error, error) // the item's error, the call's error
	}{
		{
			reasons.Malformed, client.ErrMalformed, true,
			func() error { _, err := c.Decrypt(ctx, "gAAAAA-not-a-token"); return err },
			func() (error, error) {
				r, err := c.ReEncryptBatch(ctx, []string{"gAAAAA-not-a-token"})
				return firstErr(r, err, func(r client.ReEncryptResult) error { return r.Err })
			},
		},
		{
			reasons.InvalidSignature, client.ErrInvalidSignature, true,
			func() error {
				_, err := c.ReEncrypt(ctx, testkeys.Token(t, testkeys.New(t), "secret", now()))
				return err
			},
			func() (error, error) {
				r, err := c.DecryptBatch(ctx, []string{testkeys.Token(t, testkeys.New(t), "secret", now())})
				return firstErr(r, err, func(r client.DecryptResult) error { return r.Err })
			},
		},
		{
			reasons.Expired, client.ErrExpired, true,
			func() error { _, err := c.Decrypt(ctx, testkeys.Token(t, s.primary, "secret", 1_000), ttl); return err },
			func() (error, error) {
				r, err := c.DecryptBatch(ctx, []string{testkeys.Token(t, s.primary, "secret", 1_000)}, ttl)
				return firstErr(r, err, func(r client.DecryptResult) error { return r.Err })
			},
		},
		{
			reasons.FutureTimestamp, client.ErrFutureTimestamp, true,
			func() error {
				_, err := c.Decrypt(ctx, testkeys.Token(t, s.old, "secret", now()+3600), ttl)
				return err
			},
			func() (error, error) {
				r, err := c.DecryptBatch(ctx, []string{testkeys.Token(t, s.old, "secret", now()+3600)}, ttl)
				return firstErr(r, err, func(r client.DecryptResult) error { return r.Err })
			},
		},
		{
			reasons.TokenTooLarge, client.ErrTokenTooLarge, true,
			func() error { _, err := c.Decrypt(ctx, tooLargeToken); return err },
			func() (error, error) {
				r, err := c.ReEncryptBatch(ctx, []string{tooLargeToken})
				return firstErr(r, err, func(r client.ReEncryptResult) error { return r.Err })
			},
		},
		{
			reasons.PlaintextTooLarge, client.ErrPlaintextTooLarge, false,
			func() error { _, err := c.Encrypt(ctx, make([]byte, testLimits.MaxPlaintextBytes+1)); return err },
			func() (error, error) {
				r, err := c.EncryptBatch(ctx, [][]byte{make([]byte, testLimits.MaxPlaintextBytes+1)})
				return firstErr(r, err, func(r client.EncryptResult) error { return r.Err })
			},
		},
		{
			// BATCH_TOO_LARGE fails a whole batch call: it is never an item's.
			reasons.BatchTooLarge, client.ErrBatchTooLarge, false,
			func() error {
				big := dial(t, s.addr, client.WithMaxBatchItems(testLimits.MaxBatchItems+1))
				_, err := big.EncryptBatch(ctx, make([][]byte, testLimits.MaxBatchItems+1))
				return err
			},
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			t.Run("unary", func(t *testing.T) {
				err := tt.unary()
				checkReason(t, err, tt.reason, tt.sentinel, tt.badToken)
				if code := status.Code(err); code != codes.InvalidArgument {
					t.Errorf("status.Code = %v, want InvalidArgument", code)
				}
				st, ok := status.FromError(err)
				if !ok {
					t.Fatalf("status.FromError(%v) is not ok", err)
				}
				var info *errdetails.ErrorInfo
				for _, detail := range st.Details() {
					if i, isInfo := detail.(*errdetails.ErrorInfo); isInfo {
						info = i
					}
				}
				if info.GetReason() != tt.reason || info.GetDomain() != reasons.Domain {
					t.Errorf("the status's ErrorInfo = %v", info)
				}
				if !strings.Contains(err.Error(), st.Message()) {
					t.Errorf("Error() = %q lacks the status message %q", err, st.Message())
				}
			})
			if tt.batchItem == nil {
				return
			}
			t.Run("batch item", func(t *testing.T) {
				itemErr, callErr := tt.batchItem()
				if callErr != nil {
					t.Fatalf("the batch call failed: %v", callErr)
				}
				checkReason(t, itemErr, tt.reason, tt.sentinel, tt.badToken)
				if _, ok := status.FromError(itemErr); ok {
					t.Errorf("status.FromError of an item's error is ok; the call did not fail")
				}
			})
		})
	}
}

func checkReason(t *testing.T, err error, reason string, sentinel error, badToken bool) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Reason != reason || e.Message == "" {
		t.Fatalf("error %v (%T): want a *client.Error with reason %s and a message", err, err, reason)
	}
	for _, other := range allSentinels {
		if got, want := errors.Is(err, other), other == sentinel; got != want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, other, got, want)
		}
	}
	if got := errors.Is(err, client.ErrInvalidToken); got != badToken {
		t.Errorf("errors.Is(%v, ErrInvalidToken) = %v, want %v", err, got, badToken)
	}
	if strings.Contains(err.Error(), "gAAAAA") {
		t.Errorf("error %q holds the token", err)
	}
}

// TestOverloadedErrors: a call the sidecar's admission refuses matches
// ErrTooManyCalls, or ErrTooManyBatches for a batch, and keeps its
// RESOURCE_EXHAUSTED status.
func TestOverloadedErrors(t *testing.T) {
	srv := server.New(server.Config{
		Keys:            testkeys.NewSource(testkeys.New(t)),
		Limits:          testLimits,
		MaxMessageBytes: 4 << 20,
		Version:         "client-test",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		// No call and no batch may be in flight: each is refused.
		Admission: server.Admission{MessageReadTimeout: time.Second},
	})
	c := dial(t, servetest.Serve(t, srv, server.Listen, transports[0].addr(t)))
	ctx := testContext(t)
	for _, tt := range []struct {
		reason   string
		sentinel error
		call     func() error
	}{
		{reasons.TooManyCalls, client.ErrTooManyCalls, func() error { _, err := c.Encrypt(ctx, []byte("a")); return err }},
		{reasons.TooManyBatches, client.ErrTooManyBatches, func() error { _, err := c.DecryptBatch(ctx, []string{"gAAAAA"}); return err }},
	} {
		t.Run(tt.reason, func(t *testing.T) {
			err := tt.call()
			checkReason(t, err, tt.reason, tt.sentinel, false)
			if code := status.Code(err); code != codes.ResourceExhausted {
				t.Errorf("status.Code = %v, want ResourceExhausted", code)
			}
		})
	}
}

// firstErr returns the first result's error, or the call's.
func firstErr[R any](results []R, callErr error, errOf func(R) error) (error, error) {
	if callErr != nil {
		return nil, callErr
	}
	if len(results) != 1 {
		return nil, errors.New("want exactly one result")
	}
	return errOf(results[0]), nil
}

// TestServerDownIsNotABadToken: an unreachable sidecar fails with the
// gRPC status UNAVAILABLE, which matches no sentinel.
func TestServerDownIsNotABadToken(t *testing.T) {
	for _, target := range []string{"unix://" + t.TempDir() + "/nobody.sock", closedPort(t)} {
		t.Run(target, func(t *testing.T) {
			c := dial(t, target, client.WithMaxAttempts(2))
			_, err := c.Decrypt(testContext(t), "gAAAAA-not-a-token")
			if code := status.Code(err); code != codes.Unavailable {
				t.Fatalf("Decrypt with no sidecar = %v, want UNAVAILABLE", err)
			}
			var e *client.Error
			if errors.As(err, &e) || errors.Is(err, client.ErrInvalidToken) {
				t.Fatalf("a down sidecar reads as a refused token: %v", err)
			}
			for _, sentinel := range allSentinels {
				if errors.Is(err, sentinel) {
					t.Errorf("errors.Is(%v, %v)", err, sentinel)
				}
			}
			if _, err := c.EncryptBatch(testContext(t), [][]byte{[]byte("x")}); status.Code(err) != codes.Unavailable {
				t.Errorf("EncryptBatch with no sidecar = %v, want UNAVAILABLE", err)
			}
		})
	}
}
