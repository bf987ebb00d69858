package main

import (
	"context"
	"errors"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

// dialSidecar connects to "host:port" or "unix:///path" with the Go
// client, whose batching, retries and deadlines are the project's one
// implementation. timeout is the deadline of each RPC.
func dialSidecar(target string, timeout time.Duration) (*client.Client, error) {
	return client.Dial(target, client.WithTimeout(timeout))
}

// sidecar is rotation.Crypter over the Go client.
type sidecar struct {
	c *client.Client
}

var _ rotation.Crypter = sidecar{}

// itemError is a batch item's failure with the sidecar's reason. Items
// fail with a *client.Error; anything else would be a client bug, and is
// INTERNAL so that the job stops rather than call a row bad.
func itemError(err error) *rotation.ItemError {
	var e *client.Error
	if errors.As(err, &e) {
		return &rotation.ItemError{Reason: e.Reason, Message: e.Message}
	}
	return &rotation.ItemError{Reason: reasons.Internal, Message: err.Error()}
}

// convert turns a batch call's results into the job's, or passes its
// error on.
func convert[In, Out any](results []In, err error, one func(In) Out) ([]Out, error) {
	if err != nil {
		return nil, err
	}
	out := make([]Out, len(results))
	for i, r := range results {
		out[i] = one(r)
	}
	return out, nil
}

func (s sidecar) ReEncrypt(ctx context.Context, tokens []string) ([]rotation.Encrypted, error) {
	results, err := s.c.ReEncryptBatch(ctx, tokens)
	return convert(results, err, func(r client.ReEncryptResult) rotation.Encrypted {
		if r.Err != nil {
			return rotation.Encrypted{Err: itemError(r.Err)}
		}
		return rotation.Encrypted{Token: r.Token, Changed: r.Changed}
	})
}

// Inspect uses InspectBatch, with no TTL (a check is about keys, not
// age): no plaintext crosses the wire, and a sidecar that serves only the
// least-privilege profile (docs/totp.md) answers it.
func (s sidecar) Inspect(ctx context.Context, tokens []string) ([]rotation.Inspected, error) {
	results, err := s.c.InspectBatch(ctx, tokens)
	return convert(results, err, func(r client.InspectResult) rotation.Inspected {
		if r.Err != nil {
			return rotation.Inspected{Err: itemError(r.Err)}
		}
		return rotation.Inspected{KeyID: r.KeyID}
	})
}

func (s sidecar) Encrypt(ctx context.Context, plaintexts [][]byte) ([]rotation.Encrypted, error) {
	results, err := s.c.EncryptBatch(ctx, plaintexts)
	return convert(results, err, func(r client.EncryptResult) rotation.Encrypted {
		if r.Err != nil {
			return rotation.Encrypted{Err: itemError(r.Err)}
		}
		return rotation.Encrypted{Token: r.Token, Changed: true}
	})
}

func (s sidecar) Keys(ctx context.Context) (rotation.Keys, error) {
	st, err := s.c.Status(ctx)
	if err != nil {
		return rotation.Keys{}, err
	}
	return rotation.Keys{Primary: st.PrimaryKeyID, DecryptOnly: st.DecryptOnlyKeyIDs}, nil
}
