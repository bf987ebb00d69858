package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

// Per-RPC bounds. The sidecar refuses batches over --max-batch-items
// (10000 by default) and messages over --max-message-bytes (4 MiB), so one
// database batch is sent as as many RPCs as these allow.
const (
	rpcMaxItems = 1000
	rpcMaxBytes = 1 << 20
	// A response carries each token back (plus key ids and errors), so
	// it may be larger than the request.
	rpcMaxRecvBytes = 32 << 20
)

// retryConfig retries a call the sidecar could not take (restarting, say).
// Every call the tool makes is free of side effects, so a retry is safe.
const retryConfig = `{"methodConfig": [{
  "name": [{"service": "fernet.v1.FernetService"}],
  "retryPolicy": {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"]
  }
}]}`

// dialSidecar connects to "host:port" or "unix:///path", in plaintext:
// the sidecar listens on loopback or a socket beside the app.
func dialSidecar(target string) (*grpc.ClientConn, error) {
	if strings.HasPrefix(target, "unix:") && !strings.HasPrefix(target, "unix:///") {
		return nil, fmt.Errorf("--sidecar %q: want unix:///absolute/path", target)
	}
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(retryConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(rpcMaxRecvBytes)),
	)
}

// sidecar is rotation.Crypter over the generated gRPC client.
type sidecar struct {
	rpc     fernetv1.FernetServiceClient
	timeout time.Duration // per RPC
}

var _ rotation.Crypter = sidecar{}

// chunks splits items so that each RPC stays under the sidecar's limits.
func chunks[T any](items []T, size func(T) int) [][]T {
	var out [][]T
	start, bytes := 0, 0
	for i, it := range items {
		n := size(it)
		if i > start && (i-start == rpcMaxItems || bytes+n > rpcMaxBytes) {
			out = append(out, items[start:i])
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

func itemError(e *fernetv1.ItemError) *rotation.ItemError {
	return &rotation.ItemError{Reason: e.GetReason(), Message: e.GetMessage()}
}

func (s sidecar) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s sidecar) ReEncrypt(ctx context.Context, tokens []string) ([]rotation.Sealed, error) {
	out := make([]rotation.Sealed, 0, len(tokens))
	for _, chunk := range chunks(tokens, func(t string) int { return len(t) }) {
		cctx, cancel := s.call(ctx)
		resp, err := s.rpc.ReEncryptBatch(cctx, &fernetv1.ReEncryptBatchRequest{Tokens: chunk})
		cancel()
		if err != nil {
			return nil, err
		}
		if len(resp.GetResults()) != len(chunk) {
			return nil, fmt.Errorf("ReEncryptBatch returned %d results for %d tokens", len(resp.GetResults()), len(chunk))
		}
		for _, r := range resp.GetResults() {
			if e := r.GetError(); e != nil {
				out = append(out, rotation.Sealed{Err: itemError(e)})
				continue
			}
			out = append(out, rotation.Sealed{Token: r.GetOk().GetToken(), Changed: r.GetOk().GetChanged()})
		}
	}
	return out, nil
}

func (s sidecar) Decrypt(ctx context.Context, tokens []string) ([]rotation.Opened, error) {
	out := make([]rotation.Opened, 0, len(tokens))
	for _, chunk := range chunks(tokens, func(t string) int { return len(t) }) {
		cctx, cancel := s.call(ctx)
		// No TTL: a check is about keys, not age.
		resp, err := s.rpc.DecryptBatch(cctx, &fernetv1.DecryptBatchRequest{Tokens: chunk})
		cancel()
		if err != nil {
			return nil, err
		}
		if len(resp.GetResults()) != len(chunk) {
			return nil, fmt.Errorf("DecryptBatch returned %d results for %d tokens", len(resp.GetResults()), len(chunk))
		}
		for _, r := range resp.GetResults() {
			if e := r.GetError(); e != nil {
				out = append(out, rotation.Opened{Err: itemError(e)})
				continue
			}
			out = append(out, rotation.Opened{KeyID: r.GetOk().GetKeyId(), NeedsReencrypt: r.GetOk().GetNeedsReencrypt()})
		}
	}
	return out, nil
}

func (s sidecar) Encrypt(ctx context.Context, plaintexts [][]byte) ([]rotation.Sealed, error) {
	out := make([]rotation.Sealed, 0, len(plaintexts))
	for _, chunk := range chunks(plaintexts, func(p []byte) int { return len(p) }) {
		cctx, cancel := s.call(ctx)
		resp, err := s.rpc.EncryptBatch(cctx, &fernetv1.EncryptBatchRequest{Plaintexts: chunk})
		cancel()
		if err != nil {
			return nil, err
		}
		if len(resp.GetResults()) != len(chunk) {
			return nil, fmt.Errorf("EncryptBatch returned %d results for %d plaintexts", len(resp.GetResults()), len(chunk))
		}
		for _, r := range resp.GetResults() {
			if e := r.GetError(); e != nil {
				out = append(out, rotation.Sealed{Err: itemError(e)})
				continue
			}
			out = append(out, rotation.Sealed{Token: r.GetOk().GetToken(), Changed: true})
		}
	}
	return out, nil
}

func (s sidecar) Keys(ctx context.Context) (rotation.Keys, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.rpc.GetStatus(cctx, &fernetv1.GetStatusRequest{})
	if err != nil {
		return rotation.Keys{}, err
	}
	return rotation.Keys{Primary: resp.GetPrimaryKeyId(), DecryptOnly: resp.GetDecryptOnlyKeyIds()}, nil
}
