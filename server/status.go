package server

import (
	"context"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// GetStatus reports the loaded key ids, never the keys, and the version.
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
	}, nil
}
