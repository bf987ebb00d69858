package server

import (
	"context"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Decrypt tries every loaded key in order, as MultiFernet.decrypt.
func (s *Service) Decrypt(_ context.Context, req *fernetv1.DecryptRequest) (*fernetv1.DecryptResponse, error) {
	return runUnary(s, s.metrics.decrypt, func(now time.Time, t *tally) (*fernetv1.DecryptResponse, error) {
		return s.decrypt(s.keys.Keyring(), req.GetToken(), req.TtlSeconds, now, t)
	})
}

// DecryptBatch decrypts each token with one TTL and one "now" for all.
func (s *Service) DecryptBatch(ctx context.Context, req *fernetv1.DecryptBatchRequest) (*fernetv1.DecryptBatchResponse, error) {
	keyring, now := s.keys.Keyring(), time.Now()
	decrypt := func(token string, t *tally) (*fernetv1.DecryptResponse, error) {
		return s.decrypt(keyring, token, req.TtlSeconds, now, t)
	}
	results, err := runBatch(ctx, s, s.metrics.decrypt, req.GetTokens(), decrypt, decryptBatchResult)
	if err != nil {
		return nil, err
	}
	return &fernetv1.DecryptBatchResponse{Results: results}, nil
}

// decrypt checks the TTL, when one is given, against now in whole seconds,
// as Python's int(time.time()).
func (s *Service) decrypt(keyring *fernet.Keyring, token string, ttlSeconds *int64, now time.Time, t *tally) (*fernetv1.DecryptResponse, error) {
	decrypted, err := s.decryptToken(keyring, token, ttlSeconds, now)
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

// decryptToken is the engine's Decrypt, for a token within the limit.
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
