package server

import (
	"context"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Inspect tells what Decrypt would about a token, without the plaintext.
func (s *Service) Inspect(_ context.Context, req *fernetv1.InspectRequest) (*fernetv1.InspectResponse, error) {
	return runUnary(s, s.metrics.inspect, func(now time.Time, t *tally) (*fernetv1.InspectResponse, error) {
		return s.inspect(s.keys.Keyring(), req.GetToken(), req.TtlSeconds, now, t)
	})
}

// InspectBatch inspects each token with one TTL and one "now" for all.
func (s *Service) InspectBatch(ctx context.Context, req *fernetv1.InspectBatchRequest) (*fernetv1.InspectBatchResponse, error) {
	keyring, now := s.keys.Keyring(), time.Now()
	inspect := func(token string, t *tally) (*fernetv1.InspectResponse, error) {
		return s.inspect(keyring, token, req.TtlSeconds, now, t)
	}
	results, err := runBatch(ctx, s, s.metrics.inspect, req.GetTokens(), inspect, inspectBatchResult)
	if err != nil {
		return nil, err
	}
	return &fernetv1.InspectBatchResponse{Results: results}, nil
}

// inspect decrypts the token, since only that proves it whole (its padding
// is checked after the signature), and wipes the plaintext at once.
func (s *Service) inspect(keyring *fernet.Keyring, token string, ttlSeconds *int64, now time.Time, t *tally) (*fernetv1.InspectResponse, error) {
	decrypted, err := s.decryptToken(keyring, token, ttlSeconds, now)
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
