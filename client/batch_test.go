package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/fernet"
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
// their places.
func TestBatchesSplitIntoRPCs(t *testing.T) {
	s := startSidecar(t, transports[1].addr(t), server.DefaultLimits)
	ctx := testContext(t)
	sizes := &rpcSizes{}
	withSizes := client.WithDialOptions(grpc.WithUnaryInterceptor(sizes.intercept))

	t.Run("by count", func(t *testing.T) {
		c := dial(t, s.addr, withSizes, client.WithMaxBatchItems(3))
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
				if !errorIs(r.Err, client.ErrMalformed) {
					return fmt.Sprintf("%+v, want ErrMalformed", r)
				}
				return ""
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
		c := dial(t, s.addr, withSizes, client.WithMaxBatchItems(0), client.WithMaxBatchBytes(250))
		tokens := make([]string, 7)
		for i := range tokens {
			tokens[i] = tokenUnder(t, s.old, "x", now()) // 100 bytes each
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
				if !errorIs(r.Err, client.ErrInvalidToken) {
					return fmt.Sprintf("%+v, want an invalid token", r)
				}
				return ""
			}
			if opened, err := primary.Decrypt(r.Token); r.Err != nil || err != nil || string(opened.Plaintext) != "x" {
				return fmt.Sprintf("%+v", r)
			}
			return ""
		})
	})
}
