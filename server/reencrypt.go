package server

import (
	"context"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// ReEncrypt moves a token to the primary key, as MultiFernet.rotate.
func (s *Service) ReEncrypt(_ context.Context, req *fernetv1.ReEncryptRequest) (*fernetv1.ReEncryptResponse, error) {
	return runUnary(s, s.metrics.reencrypt, nil, req.GetToken(), s.reencrypt)
}

// ReEncryptBatch re-encrypts each token; one bad item fails only itself.
func (s *Service) ReEncryptBatch(ctx context.Context, req *fernetv1.ReEncryptBatchRequest) (*fernetv1.ReEncryptBatchResponse, error) {
	results, err := runBatch(ctx, s, s.metrics.reencrypt, nil, req.GetTokens(), s.reencrypt, reencryptBatchResult)
	if err != nil {
		return nil, err
	}
	return &fernetv1.ReEncryptBatchResponse{Results: results}, nil
}

func (s *Service) reencrypt(c call, token string, t *tally) (*fernetv1.ReEncryptResponse, error) {
	reencrypted, err := s.reencryptToken(c.keyring, token)
	t.decrypted(reencrypted.FromPrimary, err)
	if err != nil {
		return nil, err
	}
	return &fernetv1.ReEncryptResponse{Token: reencrypted.Token, KeyId: reencrypted.KeyID, Changed: reencrypted.Changed}, nil
}

// reencryptToken is the engine's ReEncrypt, for a token within the limit.
func (s *Service) reencryptToken(keyring *fernet.Keyring, token string) (fernet.ReEncrypted, error) {
	if err := s.limits.checkToken(token); err != nil {
		return fernet.ReEncrypted{}, err
	}
	return keyring.ReEncrypt(token)
}

func reencryptBatchResult(ok *fernetv1.ReEncryptResponse, failed *fernetv1.ItemError) *fernetv1.ReEncryptBatchResult {
	if failed != nil {
		return &fernetv1.ReEncryptBatchResult{Result: &fernetv1.ReEncryptBatchResult_Error{Error: failed}}
	}
	return &fernetv1.ReEncryptBatchResult{Result: &fernetv1.ReEncryptBatchResult_Ok{Ok: ok}}
}
