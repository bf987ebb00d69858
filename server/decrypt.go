package server

import (
	"context"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Decrypt tries every loaded key in order, as MultiFernet.decrypt.
func (s *Service) Decrypt(_ context.Context, req *fernetv1.DecryptRequest) (*fernetv1.DecryptResponse, error) {
	return runUnary(s, s.metrics.decrypt, req.TtlSeconds, req.GetToken(), s.decrypt)
}

// DecryptBatch decrypts each token with one TTL and one "now" for all.
func (s *Service) DecryptBatch(ctx context.Context, req *fernetv1.DecryptBatchRequest) (*fernetv1.DecryptBatchResponse, error) {
	results, err := runBatch(ctx, s, s.metrics.decrypt, req.TtlSeconds, req.GetTokens(), s.decrypt, decryptBatchResult)
	if err != nil {
		return nil, err
	}
	return &fernetv1.DecryptBatchResponse{Results: results}, nil
}

func (s *Service) decrypt(c call, token string, t *tally) (*fernetv1.DecryptResponse, error) {
	decrypted, err := s.decryptToken(c.keyring, token, c.ttlSeconds, c.now)
	t.decrypted(decrypted.Primary, err)
	if err != nil {
		return nil, err
	}
	return &fernetv1.DecryptResponse{
		Plaintext:      decrypted.Plaintext,
		KeyId:          decrypted.KeyID,
		Timestamp:      decrypted.Timestamp,
		NeedsReencrypt: !decrypted.Primary,
	}, nil
}

// decryptToken is the engine's Decrypt, for a token within the limit. It
// checks the TTL, when one is given, against now in whole seconds, as
// Python's int(time.time()).
func (s *Service) decryptToken(keyring *fernet.Keyring, token string, ttlSeconds *int64, now time.Time) (fernet.Decrypted, error) {
	if err := s.limits.checkToken(token); err != nil {
		return fernet.Decrypted{}, err
	}
	if ttlSeconds == nil {
		return keyring.Decrypt(token)
	}
	return keyring.DecryptAtTime(token, *ttlSeconds, now.Unix())
}

func decryptBatchResult(ok *fernetv1.DecryptResponse, failed *fernetv1.ItemError) *fernetv1.DecryptBatchResult {
	if failed != nil {
		return &fernetv1.DecryptBatchResult{Result: &fernetv1.DecryptBatchResult_Error{Error: failed}}
	}
	return &fernetv1.DecryptBatchResult{Result: &fernetv1.DecryptBatchResult_Ok{Ok: ok}}
}
