// Package rotation re-encrypts one column of one table in place, in
// PostgreSQL, MySQL/MariaDB or SQLite: it walks the table (or one shard of
// it) by primary key, asks a Crypter (in practice fernet-sidecar) to move
// each token to the primary key, and writes back only the rows whose token
// changed, one statement and one transaction per batch, with optimistic
// concurrency so that a row the app changed meanwhile is never overwritten
// with stale data. The next batch is read and re-encrypted while one is
// written.
//
// The package knows nothing of gRPC: the Crypter interface is the part of
// the sidecar it needs, and cmd/fernetctl implements it over the Go client
// (package client). It never logs, prints or returns a token or a plaintext; reports
// carry counts, key ids and primary-key values only.
package rotation
