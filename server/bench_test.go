package server

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// BenchmarkReEncryptBatch is the batch handler alone, without gRPC: 1000
// tokens under the old key, as a rotation sends them. ns/op is per batch.
//
//	go test -run '^$' -bench ReEncryptBatch -benchmem ./server/
func BenchmarkReEncryptBatch(b *testing.B) {
	primary, old := testkeys.New(b), testkeys.New(b)
	keys := testkeys.NewSource(primary, old)
	service := NewService(keys, DefaultLimits, NewMetrics(prometheus.NewRegistry()), "bench")
	underOld := fernet.NewKeyring(old)
	req := &fernetv1.ReEncryptBatchRequest{}
	for range 1000 {
		sealed, err := underOld.Encrypt(make([]byte, 32))
		if err != nil {
			b.Fatal(err)
		}
		req.Tokens = append(req.Tokens, sealed.Token)
	}
	for b.Loop() {
		if _, err := service.ReEncryptBatch(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyTOTP is one login's check, without gRPC: decrypt the
// token, decode the secret, compute the window's three codes.
//
//	go test -run '^$' -bench VerifyTOTP -benchmem ./server/
func BenchmarkVerifyTOTP(b *testing.B) {
	service := newService(b)
	enrolled, err := service.CreateTOTP(context.Background(), &fernetv1.CreateTOTPRequest{AccountName: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	req := &fernetv1.VerifyTOTPRequest{Token: enrolled.GetToken(), Code: "123456"}
	for b.Loop() {
		if _, err := service.VerifyTOTP(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
