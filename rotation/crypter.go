package rotation

import "context"

// Crypter is what the job needs from fernet-sidecar. Each batch method
// returns one result per input, in input order; a bad item fails only
// itself (Err set), while a returned error means the call as a whole failed
// and nothing in it may be trusted.
type Crypter interface {
	// ReEncrypt moves tokens to the primary key, keeping their timestamps
	// (MultiFernet.rotate). Changed is false for a token that is already
	// canonical under the primary key.
	ReEncrypt(ctx context.Context, tokens []string) ([]Encrypted, error)
	// Inspect says which key verifies each token, with no TTL. It needs
	// no plaintext, so an implementation may use a call that returns
	// none (the sidecar's InspectBatch) or DecryptBatch and drop it.
	Inspect(ctx context.Context, tokens []string) ([]Inspected, error)
	// Encrypt makes new tokens under the primary key.
	Encrypt(ctx context.Context, plaintexts [][]byte) ([]Encrypted, error)
	// Keys reports the ids of the loaded keys.
	Keys(ctx context.Context) (Keys, error)
}

// Encrypted is a token under the primary key, as Encrypt and ReEncrypt
// return it, or why there is none.
type Encrypted struct {
	Token string
	// Changed is false when ReEncrypt returned the token as it was given.
	Changed bool
	Err     *ItemError
}

// Inspected says which key verified a token, or why none did. The
// plaintext is deliberately not part of it: the job never needs it.
type Inspected struct {
	KeyID string
	Err   *ItemError
}

// ItemError is why one item failed, with the sidecar's stable reason.
type ItemError struct {
	Reason  string
	Message string
}

func (e *ItemError) Error() string { return e.Reason + ": " + e.Message }

// Keys are the key ids the sidecar has loaded.
type Keys struct {
	Primary     string
	DecryptOnly []string
}

// role names a key id for reports.
func (k Keys) role(id string) string {
	if id == k.Primary {
		return "primary"
	}
	for _, old := range k.DecryptOnly {
		if id == old {
			return "old"
		}
	}
	// The sidecar reloaded its keys during the run.
	return "unknown"
}
