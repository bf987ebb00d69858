package client

import (
	"context"
	"sync"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// EncryptResult is one item of EncryptBatch: the token, or Err.
type EncryptResult struct {
	Encrypted
	// Err is the item's failure, an *Error (ErrPlaintextTooLarge), or nil.
	Err error
}

// DecryptResult is one item of DecryptBatch: what the token holds, or Err.
type DecryptResult struct {
	Decrypted
	// Err is the item's failure, an *Error (errors.Is(Err,
	// ErrInvalidToken) for a bad token), or nil.
	Err error
}

// ReEncryptResult is one item of ReEncryptBatch: the new token, or Err.
type ReEncryptResult struct {
	ReEncrypted
	// Err is the item's failure, an *Error, or nil.
	Err error
}

// EncryptBatch encrypts every plaintext. The results are in the order of
// plaintexts; an item that fails has only Err set and never fails the
// others. The returned error is for the call as a whole (the sidecar is
// down, ErrBatchTooLarge, the deadline passed), and then there are no
// results. Long slices go in several RPCs (see WithMaxBatchItems).
func (c *Client) EncryptBatch(ctx context.Context, plaintexts [][]byte) ([]EncryptResult, error) {
	return runBatch(ctx, c, plaintexts, func(b []byte) int { return len(b) },
		func(ctx context.Context, chunk [][]byte) ([]*fernetv1.EncryptBatchResult, error) {
			resp, err := c.rpc.EncryptBatch(ctx, &fernetv1.EncryptBatchRequest{Plaintexts: chunk}, c.callOpt...)
			return resp.GetResults(), err
		},
		func(ok *fernetv1.EncryptResponse, err error) EncryptResult {
			return EncryptResult{Encrypted: encrypted(ok), Err: err}
		})
}

// DecryptBatch decrypts every token, with one TTL for all (WithTTL), as
// Decrypt does one. Results and errors are as for EncryptBatch.
func (c *Client) DecryptBatch(ctx context.Context, tokens []string, opts ...DecryptOption) ([]DecryptResult, error) {
	ttl := decryptTTL(opts)
	return runBatch(ctx, c, tokens, func(s string) int { return len(s) },
		func(ctx context.Context, chunk []string) ([]*fernetv1.DecryptBatchResult, error) {
			resp, err := c.rpc.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{Tokens: chunk, TtlSeconds: ttl}, c.callOpt...)
			return resp.GetResults(), err
		},
		func(ok *fernetv1.DecryptResponse, err error) DecryptResult {
			return DecryptResult{Decrypted: decrypted(ok), Err: err}
		})
}

// ReEncryptBatch re-encrypts every token, as ReEncrypt does one. A bulk
// rotation writes back only the items whose Changed is true. Results and
// errors are as for EncryptBatch.
func (c *Client) ReEncryptBatch(ctx context.Context, tokens []string) ([]ReEncryptResult, error) {
	return runBatch(ctx, c, tokens, func(s string) int { return len(s) },
		func(ctx context.Context, chunk []string) ([]*fernetv1.ReEncryptBatchResult, error) {
			resp, err := c.rpc.ReEncryptBatch(ctx, &fernetv1.ReEncryptBatchRequest{Tokens: chunk}, c.callOpt...)
			return resp.GetResults(), err
		},
		func(ok *fernetv1.ReEncryptResponse, err error) ReEncryptResult {
			return ReEncryptResult{ReEncrypted: reencrypted(ok), Err: err}
		})
}

// batchResult is one item of a batch response: its result, or the error
// it failed with.
type batchResult[Ok any] interface {
	GetOk() Ok
	GetError() *fernetv1.ItemError
}

// runBatch sends items in chunks, up to c.opts.batchRPCs RPCs at once,
// each with its own default deadline, and converts the results in order,
// each with its item's error (see fromItem) or nil.
// The caller's goroutine sends the last RPC, and any other when the other
// goroutines are all busy: handing an RPC to a goroutine costs a wake-up,
// and a batch of one RPC needs none. The first
// RPC to fail cancels the others, and its error is the call's.
func runBatch[In any, Wire batchResult[Ok], Ok, Out any](
	ctx context.Context,
	c *Client,
	items []In,
	size func(In) int,
	call func(context.Context, []In) ([]Wire, error),
	convert func(Ok, error) Out,
) ([]Out, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		failed  sync.Once
		callErr error
	)
	send := func(chunk []In, into []Out) {
		err := func() error {
			ctx, cancelCall := c.callContext(ctx)
			defer cancelCall()
			results, err := call(ctx, chunk)
			if err != nil {
				return fromCall(err)
			}
			if len(results) != len(chunk) {
				return errShortResponse
			}
			for i, r := range results {
				var itemErr error
				if failed := r.GetError(); failed != nil {
					itemErr = fromItem(failed)
				}
				into[i] = convert(r.GetOk(), itemErr)
			}
			return nil
		}()
		if err != nil {
			failed.Do(func() { callErr = err; cancel() })
		}
	}
	out := make([]Out, len(items))
	others := make(chan struct{}, max(c.opts.batchRPCs-1, 0)) // RPCs in flight on other goroutines
	var inFlight sync.WaitGroup
	start := 0
	parts := chunks(items, size, c.opts.maxBatchItems, c.opts.maxBatchBytes)
	for i, chunk := range parts {
		into := out[start : start+len(chunk)]
		start += len(chunk)
		if i < len(parts)-1 {
			select {
			case others <- struct{}{}:
				inFlight.Go(func() {
					defer func() { <-others }()
					send(chunk, into)
				})
				continue
			default:
			}
		}
		send(chunk, into)
	}
	inFlight.Wait()
	if callErr != nil {
		return nil, callErr
	}
	return out, nil
}

// chunks splits items into runs of at most maxItems items and maxBytes
// bytes (by size); an item larger than maxBytes is a run of its own. A
// limit of zero or less does not apply.
func chunks[In any](items []In, size func(In) int, maxItems, maxBytes int) [][]In {
	var out [][]In
	start, bytes := 0, 0
	for i, item := range items {
		n := size(item)
		full := maxItems > 0 && i-start >= maxItems
		tooBig := maxBytes > 0 && i > start && bytes+n > maxBytes
		if full || tooBig {
			out = append(out, items[start:i:i])
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}
