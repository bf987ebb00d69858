package server

import (
	"context"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Encrypt makes a token under the primary key.
func (s *Service) Encrypt(_ context.Context, req *fernetv1.EncryptRequest) (*fernetv1.EncryptResponse, error) {
	return runUnary(s, s.metrics.encrypt, nil, req.GetPlaintext(), s.encrypt)
}

// EncryptBatch encrypts each plaintext; one bad item fails only itself.
func (s *Service) EncryptBatch(ctx context.Context, req *fernetv1.EncryptBatchRequest) (*fernetv1.EncryptBatchResponse, error) {
	results, err := runBatch(ctx, s, s.metrics.encrypt, nil, req.GetPlaintexts(), s.encrypt, encryptBatchResult)
	if err != nil {
		return nil, err
	}
	return &fernetv1.EncryptBatchResponse{Results: results}, nil
}

func (s *Service) encrypt(c call, plaintext []byte, t *tally) (*fernetv1.EncryptResponse, error) {
	encrypted, err := s.encryptPlaintext(c.keyring, plaintext)
	t.encrypted(err)
	if err != nil {
		return nil, err
	}
	return &fernetv1.EncryptResponse{Token: encrypted.Token, KeyId: encrypted.KeyID}, nil
}

// encryptPlaintext is the engine's Encrypt, for a plaintext within the limit.
func (s *Service) encryptPlaintext(keyring *fernet.Keyring, plaintext []byte) (fernet.Encrypted, error) {
	if err := s.limits.checkPlaintext(plaintext); err != nil {
		return fernet.Encrypted{}, err
	}
	return keyring.Encrypt(plaintext)
}

func encryptBatchResult(ok *fernetv1.EncryptResponse, failed *fernetv1.ItemError) *fernetv1.EncryptBatchResult {
	if failed != nil {
		return &fernetv1.EncryptBatchResult{Result: &fernetv1.EncryptBatchResult_Error{Error: failed}}
	}
	return &fernetv1.EncryptBatchResult{Result: &fernetv1.EncryptBatchResult_Ok{Ok: ok}}
}
