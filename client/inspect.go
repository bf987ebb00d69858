package client

import (
	"context"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Inspected is what Decrypt tells about a token, without its plaintext.
type Inspected struct {
	// KeyID is the id of the key that verified the token.
	KeyID string
	// Timestamp is the token's creation time in Unix seconds.
	Timestamp uint64
	// NeedsReEncrypt is true when the token was not made by the primary key.
	NeedsReEncrypt bool
}

// InspectResult is one item of InspectBatch: what the token tells, or Err.
type InspectResult struct {
	Inspected
	// Err is the item's failure, an *Error (errors.Is(Err,
	// ErrInvalidToken) for a bad token), or nil.
	Err error
}

// Inspect checks token as Decrypt does (WithTTL included) and tells which
// key verifies it, its timestamp and whether it needs re-encrypting,
// without sending the plaintext back: what a rotation check needs.
func (c *Client) Inspect(ctx context.Context, token string, opts ...DecryptOption) (Inspected, error) {
	return unary(ctx, c, c.rpc.Inspect, &fernetv1.InspectRequest{Token: token, TtlSeconds: decryptTTL(opts)}, inspected)
}

// InspectBatch inspects every token, with one TTL for all (WithTTL), as
// Inspect does one. Results and errors are as for EncryptBatch.
func (c *Client) InspectBatch(ctx context.Context, tokens []string, opts ...DecryptOption) ([]InspectResult, error) {
	ttl := decryptTTL(opts)
	return runBatch(ctx, c, tokens, func(s string) int { return len(s) },
		func(ctx context.Context, chunk []string) ([]*fernetv1.InspectBatchResult, error) {
			resp, err := c.rpc.InspectBatch(ctx, &fernetv1.InspectBatchRequest{Tokens: chunk, TtlSeconds: ttl}, c.callOpt...)
			return resp.GetResults(), err
		},
		func(ok *fernetv1.InspectResponse, err error) InspectResult {
			return InspectResult{Inspected: inspected(ok), Err: err}
		})
}

func inspected(resp *fernetv1.InspectResponse) Inspected {
	return Inspected{KeyID: resp.GetKeyId(), Timestamp: resp.GetTimestamp(), NeedsReEncrypt: resp.GetNeedsReencrypt()}
}
