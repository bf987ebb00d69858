// Package fernet is the sidecar's Fernet engine: keys, tokens and
// MultiFernet semantics, held to Python's cryptography.fernet as the
// reference. It knows nothing of gRPC.
//
// Tokens are made and verified by this package, with the state of each
// key (its AES block, its HMAC states, working buffers) built once per key
// load, so that an operation allocates only what it returns. Tokens made
// here are canonical (padded URL-safe base64), as Python's and fernet-go's
// are. fernet-go provides the Key type's encoding and key generation only:
// its verify path disagrees with Python (it decodes base64 strictly, skips
// time checks when ttl <= 0, cannot fall through to the next key after a
// padding failure, and panics on some short tokens), and its encrypt path
// builds the AES and HMAC state anew for every token.
package fernet
