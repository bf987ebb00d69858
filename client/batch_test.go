package client_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// rpcSizes is a client interceptor that records the items of each batch
// RPC.
type rpcSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (r *rpcSizes) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	n := -1
	switch req := req.(type) {
	case interface{ GetPlaintexts() [][]byte }:
		n = len(req.GetPlaintexts())
	case interface{ GetTokens() []string }:
		n = len(req.GetTokens())
	}
	r.mu.Lock()
	r.sizes = append(r.sizes, n)
	r.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (r *rpcSizes) take() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	sizes := r.sizes
	r.sizes = nil
	return sizes
}

// TestBatchesSplitIntoRPCs: long batches go in several RPCs, by count and
// by bytes, and the results still come back in order, item errors in
// their places. One RPC at a time, so the sizes come in order.
func TestBatchesSplitIntoRPCs(t *testing.T) {
	s := startSidecar(t, transports[1].addr(t), server.DefaultLimits)
	ctx := testContext(t)
	sizes := &rpcSizes{}
	withSizes := client.WithDialOptions(grpc.WithUnaryInterceptor(sizes.intercept))

	t.Run("by count", func(t *testing.T) {
		c := dial(t, s.addr, withSizes, client.WithBatchRPCs(1), client.WithMaxBatchItems(3))
		plaintexts := make([][]byte, 10)
		for i := range plaintexts {
			plaintexts[i] = fmt.Appendf(nil, "item %d", i)
		}
		encrypted, err := c.EncryptBatch(ctx, plaintexts)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(sizes.take()); got != "[3 3 3 1]" {
			t.Errorf("RPC sizes = %s, want [3 3 3 1]", got)
		}
		tokens := make([]string, len(encrypted))
		for i, r := range encrypted {
			tokens[i] = r.Token
		}
		tokens[4] = "not a token"
		decrypted, err := c.DecryptBatch(ctx, tokens)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, len(decrypted), len(plaintexts), func(i int) string {
			r := decrypted[i]
			if i == 4 {
				return failedWith(r, r.Err, client.ErrMalformed)
			}
			if r.Err != nil || string(r.Plaintext) != string(plaintexts[i]) {
				return fmt.Sprintf("%+v, want %q", r, plaintexts[i])
			}
			return ""
		})
		rotated, err := c.ReEncryptBatch(ctx, tokens)
		if err != nil || len(rotated) != len(tokens) || !errorIs(rotated[4].Err, client.ErrMalformed) || rotated[9].Token != tokens[9] {
			t.Fatalf("ReEncryptBatch = %+v, %v", rotated, err)
		}
		sizes.take()
	})

	t.Run("by bytes", func(t *testing.T) {
		c := dial(t, s.addr, withSizes, client.WithBatchRPCs(1), client.WithMaxBatchItems(0), client.WithMaxBatchBytes(250))
		tokens := make([]string, 7)
		for i := range tokens {
			tokens[i] = testkeys.Token(t, s.old, "x", now()) // 100 bytes each
		}
		tokens[3] = strings.Repeat("A", 400) // over the limit alone
		results, err := c.ReEncryptBatch(ctx, tokens)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(sizes.take()); got != "[2 1 1 2 1]" {
			t.Errorf("RPC sizes = %s, want [2 1 1 2 1]", got)
		}
		primary := fernet.NewKeyring(s.primary)
		checkResults(t, len(results), len(tokens), func(i int) string {
			r := results[i]
			if i == 3 {
				return failedWith(r, r.Err, client.ErrInvalidToken)
			}
			if opened, err := primary.Decrypt(r.Token); r.Err != nil || err != nil || string(opened.Plaintext) != "x" {
				return fmt.Sprintf("%+v", r)
			}
			return ""
		})
	})
}

// inFlight is a client interceptor that holds each RPC until want RPCs are
// in flight together (or a second has passed), and records the sizes and
// the most RPCs it saw in flight at once.
type inFlight struct {
	rpcSizes
	want       int
	running    atomic.Int64
	mostAtOnce atomic.Int64
	together   chan struct{}
	once       sync.Once
	fail       func(size int) error // an RPC's own failure, if any
}

func (f *inFlight) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	n := len(req.(interface{ GetTokens() []string }).GetTokens())
	f.mu.Lock()
	f.sizes = append(f.sizes, n)
	f.mu.Unlock()
	now := f.running.Add(1)
	defer f.running.Add(-1)
	for seen := f.mostAtOnce.Load(); now > seen && !f.mostAtOnce.CompareAndSwap(seen, now); seen = f.mostAtOnce.Load() {
	}
	if now >= int64(f.want) {
		f.once.Do(func() { close(f.together) })
	}
	select {
	case <-f.together:
	case <-time.After(time.Second):
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return err
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// TestBatchKeepsRPCsInFlight: a batch that needs several RPCs keeps up to
// WithBatchRPCs of them in flight together; the results stay in order.
func TestBatchKeepsRPCsInFlight(t *testing.T) {
	s := startSidecar(t, transports[1].addr(t), server.DefaultLimits)
	ctx := testContext(t)
	tokens := make([]string, 2500)
	for i := range tokens {
		tokens[i] = testkeys.Token(t, s.old, fmt.Sprint(i), now())
	}
	tests := []struct {
		rpcs, wantAtOnce int
	}{
		{1, 1},
		{2, 2},
		{3, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d RPCs", tt.rpcs), func(t *testing.T) {
			f := &inFlight{want: tt.wantAtOnce, together: make(chan struct{})}
			c := dial(t, s.addr, client.WithDialOptions(grpc.WithUnaryInterceptor(f.intercept)),
				client.WithBatchRPCs(tt.rpcs), client.WithMaxBatchItems(1000))
			results, err := c.ReEncryptBatch(ctx, tokens)
			if err != nil {
				t.Fatal(err)
			}
			sizes := f.take()
			slices.Sort(sizes)
			if got := fmt.Sprint(sizes); got != "[500 1000 1000]" {
				t.Errorf("RPC sizes = %s, want [500 1000 1000]", got)
			}
			if got := f.mostAtOnce.Load(); got != int64(tt.wantAtOnce) {
				t.Errorf("at most %d RPCs in flight at once, want %d", got, tt.wantAtOnce)
			}
			primary := fernet.NewKeyring(s.primary)
			checkResults(t, len(results), len(tokens), func(i int) string {
				opened, err := primary.Decrypt(results[i].Token)
				if results[i].Err != nil || err != nil || string(opened.Plaintext) != fmt.Sprint(i) {
					return fmt.Sprintf("%+v (%v), want item %d re-encrypted", results[i], err, i)
				}
				return ""
			})
		})
	}

	t.Run("one RPC fails", func(t *testing.T) {
		f := &inFlight{want: 2, together: make(chan struct{}), fail: func(size int) error {
			if size == 1000 {
				return status.Error(codes.ResourceExhausted, "refused")
			}
			return nil
		}}
		c := dial(t, s.addr, client.WithDialOptions(grpc.WithUnaryInterceptor(f.intercept)), client.WithMaxBatchItems(1000))
		results, err := c.ReEncryptBatch(ctx, tokens)
		if status.Code(err) != codes.ResourceExhausted || results != nil {
			t.Fatalf("ReEncryptBatch = %d results, %v; want no results and the failed RPC's error", len(results), err)
		}
	})
}
