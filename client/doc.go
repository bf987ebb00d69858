// Package client is the Go client of fernet-sidecar: Fernet encryption,
// byte-compatible with Python's cryptography.fernet, served over gRPC by
// the sidecar beside the app.
//
//	c, err := client.Dial("localhost:50051") // or "unix:///run/fernet/fernet.sock"
//	if err != nil { ... }
//	defer c.Close()
//
//	enc, err := c.Encrypt(ctx, []byte("JBSWY3DPEHPK3PXP"))
//	dec, err := c.Decrypt(ctx, enc.Token, client.WithTTL(time.Hour))
//	switch {
//	case errors.Is(err, client.ErrExpired):       // older than the TTL
//	case errors.Is(err, client.ErrInvalidToken):  // any other bad token
//	case err != nil:                              // the sidecar failed or is down
//	}
//
// # Errors
//
// A call the sidecar refuses for a reason it names (a bad token, an input
// over a limit) returns an [*Error] carrying that reason. errors.Is matches
// it against the sentinel of its reason ([ErrMalformed], [ErrExpired], ...)
// and, for the token reasons, against [ErrInvalidToken], which is what
// Python's single InvalidToken means. The gRPC status stays reachable:
// status.FromError and status.Code work on the error unchanged. Batch
// items carry the same [*Error] in their Err field, without a gRPC status,
// because the call itself succeeded.
//
// Any other failure (the sidecar is down, the deadline passed) is the gRPC
// status error as grpc-go returned it: status.Code(err) is then
// codes.Unavailable, codes.DeadlineExceeded and so on, and errors.Is
// matches none of the sentinels.
//
// # Deadlines
//
// Every RPC gets the client's default timeout (5 s, see [WithTimeout]) when
// the caller's context has no deadline of its own. A context that already
// has a deadline is used as it is, whether it is shorter or longer.
//
// # Retries
//
// Every method of the service is free of side effects on the server (it
// stores nothing; only its metrics count), so an RPC that failed with
// UNAVAILABLE, that is one the sidecar never got to or that was cut off by
// its shutdown or a broken connection, is retried by gRPC itself, per the
// retry policy of the service config this client installs: at most 3
// attempts (see [WithMaxAttempts]), with exponential backoff from 100 ms to
// 1 s, within the call's one deadline. No other code is ever retried:
// INVALID_ARGUMENT (a bad token, an input over a limit) would fail again,
// and DEADLINE_EXCEEDED means the time is up.
package client
