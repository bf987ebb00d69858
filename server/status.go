package server

import (
	"context"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// GetStatus reports the loaded key ids, never the keys, the version, the
// methods served and the limits.
func (s *Service) GetStatus(context.Context, *fernetv1.GetStatusRequest) (*fernetv1.GetStatusResponse, error) {
	keyring := s.keys.Keyring()
	decryptOnly := keyring.DecryptOnly()
	ids := make([]string, len(decryptOnly))
	for i, key := range decryptOnly {
		ids[i] = key.ID()
	}
	return &fernetv1.GetStatusResponse{
		PrimaryKeyId:      keyring.Primary().ID(),
		DecryptOnlyKeyIds: ids,
		Version:           s.version,
		AllowedMethods:    s.allowedMethods,
		Limits: &fernetv1.ServerLimits{
			MaxPlaintextBytes: uint64(s.limits.MaxPlaintextBytes),
			MaxTokenBytes:     uint64(s.limits.maxTokenBytes()),
			MaxBatchItems:     uint64(s.limits.MaxBatchItems),
			MaxMessageBytes:   uint64(s.maxMessageBytes),
		},
	}, nil
}
