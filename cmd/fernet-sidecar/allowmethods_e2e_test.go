package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// TestTOTPOnlyProfile starts the sidecar with docs/totp.md's
// least-privilege profile, set in the environment: the app enrols and
// verifies, a rotation re-encrypts and checks, and no call returns a
// plaintext.
func TestTOTPOnlyProfile(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	profile := testenv.TOTPOnlyProfile(t)
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + testkeys.New(t).Encode(), "FERNET_SIDECAR_ALLOW_METHODS=" + profile},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	client := fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	enrolled, err := client.CreateTOTP(ctx, &fernetv1.CreateTOTPRequest{AccountName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.VerifyTOTP(ctx, &fernetv1.VerifyTOTPRequest{Token: enrolled.GetToken(), Code: "000000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.EncryptBatch(ctx, &fernetv1.EncryptBatchRequest{Plaintexts: [][]byte{[]byte("3132333435363738393031323334353637383930")}}); err != nil {
		t.Fatal(err) // fernetctl --encrypt-plaintext: tokens out, no plaintext
	}
	if _, err := client.ReEncryptBatch(ctx, &fernetv1.ReEncryptBatchRequest{Tokens: []string{enrolled.GetToken()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.InspectBatch(ctx, &fernetv1.InspectBatchRequest{Tokens: []string{enrolled.GetToken()}}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: enrolled.GetToken()})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Decrypt = %v, want PERMISSION_DENIED", err)
	}
	_, err = client.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{Tokens: []string{enrolled.GetToken()}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("DecryptBatch = %v, want PERMISSION_DENIED", err)
	}
	st, err := client.GetStatus(ctx, &fernetv1.GetStatusRequest{})
	if err != nil || !slices.Equal(st.GetAllowedMethods(), strings.Split(profile, ",")) {
		t.Fatalf("GetStatus = %v, %v; want the profile's methods", st, err)
	}
	waitForMetric(t, s, `fernet_method_denied_total{method="Decrypt"} 1`)
	waitForMetric(t, s, `fernet_method_denied_total{method="DecryptBatch"} 1`)
	s.Stop(t)
	if !strings.Contains(s.Log(), `"reason":"METHOD_NOT_ALLOWED"`) || strings.Contains(s.Log(), enrolled.GetToken()) {
		t.Errorf("the log should name each refused call, never its token:\n%s", s.Log())
	}
}
