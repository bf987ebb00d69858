package server

import (
	"context"
	"testing"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// BenchmarkUnaryDecrypt is Decrypt through gRPC on a Unix socket, with
// callers in parallel on one connection: what admission costs a call.
//
//	go test -run '^$' -bench UnaryDecrypt -cpu 2 ./server/
func BenchmarkUnaryDecrypt(b *testing.B) {
	ts := startServer(b, DefaultLimits)
	sealed, err := ts.client.Encrypt(context.Background(), &fernetv1.EncryptRequest{Plaintext: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	req := &fernetv1.DecryptRequest{Token: sealed.GetToken()}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ts.client.Decrypt(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
