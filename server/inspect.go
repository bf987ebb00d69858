package server

import (
	"context"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Inspect tells what Decrypt would about a token, without the plaintext.
func (s *Service) Inspect(_ context.Context, req *fernetv1.InspectRequest) (*fernetv1.InspectResponse, error) {
	return runUnary(s, s.metrics.inspect, req.TtlSeconds, req.GetToken(), s.inspect)
}

// InspectBatch inspects each token with one TTL and one "now" for all.
func (s *Service) InspectBatch(ctx context.Context, req *fernetv1.InspectBatchRequest) (*fernetv1.InspectBatchResponse, error) {
	results, err := runBatch(ctx, s, s.metrics.inspect, req.TtlSeconds, req.GetTokens(), s.inspect, inspectBatchResult)
	if err != nil {
		return nil, err
	}
	return &fernetv1.InspectBatchResponse{Results: results}, nil
}

// inspect decrypts the token, since only that proves it whole (its padding
// is checked after the signature), and wipes the plaintext at once.
func (s *Service) inspect(c call, token string, t *tally) (*fernetv1.InspectResponse, error) {
	decrypted, err := s.decryptToken(c.keyring, token, c.ttlSeconds, c.now)
	clear(decrypted.Plaintext)
	t.decrypted(decrypted.Primary, err)
	if err != nil {
		return nil, err
	}
	return &fernetv1.InspectResponse{
		KeyId:          decrypted.KeyID,
		Timestamp:      decrypted.Timestamp,
		NeedsReencrypt: !decrypted.Primary,
	}, nil
}

func inspectBatchResult(ok *fernetv1.InspectResponse, failed *fernetv1.ItemError) *fernetv1.InspectBatchResult {
	if failed != nil {
		return &fernetv1.InspectBatchResult{Result: &fernetv1.InspectBatchResult_Error{Error: failed}}
	}
	return &fernetv1.InspectBatchResult{Result: &fernetv1.InspectBatchResult_Ok{Ok: ok}}
}
