package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// runEcho is "fernet-bench echo --addr unix:///path": a bare grpc-go
// server of fernet.v1.FernetService that does no crypto. It answers
// Decrypt and ReEncryptBatch with messages of the sizes the sidecar's
// answers have, so that a client sees the same bytes on the wire. It has
// no interceptors, metrics or limits: the comparison for what the
// sidecar adds.
func runEcho(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fernet-bench echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "unix:///path to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path, ok := strings.CutPrefix(*addr, "unix://")
	if !ok || path == "" {
		fmt.Fprintln(stderr, "fernet-bench echo: --addr must be unix:///path")
		return 2
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(stderr, "fernet-bench echo:", err)
		return 1
	}
	srv := grpc.NewServer()
	fernetv1.RegisterFernetServiceServer(srv, &echoService{})
	healthpb.RegisterHealthServer(srv, health.NewServer()) // "" is SERVING
	signals, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-signals.Done()
		srv.GracefulStop()
	}()
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(stderr, "fernet-bench echo:", err)
		return 1
	}
	return 0
}

type echoService struct {
	fernetv1.UnimplementedFernetServiceServer
}

// echoKeyID has the length of a real key id.
const echoKeyID = "0123456789abcdef"

// echoPlaintext is sliced to the length a token's plaintext has.
var echoPlaintext = make([]byte, 64<<10)

// Decrypt answers as the sidecar would for a full-block plaintext: the
// ciphertext's length less one block of padding.
func (e *echoService) Decrypt(_ context.Context, req *fernetv1.DecryptRequest) (*fernetv1.DecryptResponse, error) {
	const overhead = 1 + 8 + 16 + 32 // version, timestamp, IV, HMAC
	n := max(base64.URLEncoding.DecodedLen(len(req.GetToken()))-overhead-16, 0)
	n = min(n, len(echoPlaintext))
	return &fernetv1.DecryptResponse{
		Plaintext: echoPlaintext[:n],
		KeyId:     echoKeyID,
		Timestamp: uint64(time.Now().Unix()),
	}, nil
}

// ReEncryptBatch sends every token back as if it were the new one.
func (e *echoService) ReEncryptBatch(_ context.Context, req *fernetv1.ReEncryptBatchRequest) (*fernetv1.ReEncryptBatchResponse, error) {
	results := make([]*fernetv1.ReEncryptBatchResult, len(req.GetTokens()))
	for i, token := range req.GetTokens() {
		results[i] = &fernetv1.ReEncryptBatchResult{Result: &fernetv1.ReEncryptBatchResult_Ok{
			Ok: &fernetv1.ReEncryptResponse{Token: token, KeyId: echoKeyID, Changed: true},
		}}
	}
	return &fernetv1.ReEncryptBatchResponse{Results: results}, nil
}
