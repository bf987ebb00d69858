// Package fernet is the sidecar's Fernet engine: keys, tokens and
// MultiFernet semantics, held to Python's cryptography.fernet as the
// reference. It knows nothing of gRPC.
//
// Tokens are made by github.com/fernet/fernet-go, which makes canonical
// tokens. Tokens are verified by this package, because fernet-go's verify
// path disagrees with Python: it decodes base64 strictly, skips time checks
// when ttl <= 0, cannot fall through to the next key after a padding
// failure, and panics on some short tokens.
package fernet
