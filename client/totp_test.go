package client_test

import (
	"errors"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/server"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

func TestInspect(t *testing.T) {
	s := startSidecar(t, "127.0.0.1:0", testLimits)
	c := dial(t, s.addr, client.WithMaxBatchItems(2)) // several RPCs
	ctx := testContext(t)

	got, err := c.Inspect(ctx, testkeys.Token(t, s.old, "secret", 1_600_000_000))
	if want := (client.Inspected{KeyID: s.old.ID(), Timestamp: 1_600_000_000, NeedsReEncrypt: true}); err != nil || got != want {
		t.Fatalf("Inspect = %+v, %v; want %+v", got, err, want)
	}
	if _, err := c.Inspect(ctx, testkeys.Token(t, s.primary, "secret", 1), client.WithTTL(time.Minute)); !errors.Is(err, client.ErrExpired) {
		t.Fatalf("Inspect of an old token with a TTL: %v, want ErrExpired", err)
	}

	made := now()
	tokens := []string{
		testkeys.Token(t, s.primary, "a", made),
		"garbage",
		testkeys.Token(t, s.old, "b", made),
		testkeys.Token(t, testkeys.New(t), "c", made),
		testkeys.Token(t, s.primary, "d", 1),
	}
	results, err := c.InspectBatch(ctx, tokens, client.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Err != nil || results[0].KeyID != s.primary.ID() || results[0].NeedsReEncrypt || results[0].Timestamp != made {
		t.Errorf("item 0 = %+v, want under the primary at %d", results[0], made)
	}
	if results[2].Err != nil || results[2].KeyID != s.old.ID() || !results[2].NeedsReEncrypt {
		t.Errorf("item 2 = %+v, want under the old key", results[2])
	}
	for i, want := range map[int]error{1: client.ErrMalformed, 3: client.ErrInvalidSignature, 4: client.ErrExpired} {
		if !errors.Is(results[i].Err, want) {
			t.Errorf("item %d: Err = %v, want %v", i, results[i].Err, want)
		}
	}
}

func TestTOTP(t *testing.T) {
	s := startSidecar(t, "127.0.0.1:0", server.DefaultLimits)
	c := dial(t, s.addr)
	ctx := testContext(t)

	enrolment, err := c.CreateTOTP(ctx, client.TOTPEnrolRequest{
		AccountName: "alice@example.com", Issuer: "Example",
		TOTPParams: client.TOTPParams{Digits: 8, PeriodSeconds: 60, Algorithm: client.TOTPSHA256}, SecretBytes: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := fernet.NewKeyring(s.primary).Decrypt(enrolment.Token)
	if err != nil {
		t.Fatal(err)
	}
	uri, err := url.Parse(enrolment.ProvisioningURI)
	if err != nil || uri.Query().Get("secret") != string(opened.Plaintext) || uri.Query().Get("algorithm") != "SHA256" || enrolment.KeyID != s.primary.ID() {
		t.Fatalf("enrolment %+v: the URI must hold the token's secret and parameters", enrolment.KeyID)
	}
	secret, err := totp.DecodeBase32(opened.Plaintext)
	if err != nil || len(secret) != 32 {
		t.Fatalf("the token holds %d bytes of secret (%v), want 32", len(secret), err)
	}
	params := totp.Params{Digits: 8, PeriodSeconds: 60, Algorithm: totp.SHA256}
	step := params.Counter(time.Now())
	request := client.TOTPVerifyRequest{
		Token: enrolment.Token, Code: params.Code(secret, step-2),
		TOTPParams: client.TOTPParams{Digits: 8, PeriodSeconds: 60, Algorithm: client.TOTPSHA256},
	}
	if got, err := c.VerifyTOTP(ctx, request); err != nil || got.Outcome != client.TOTPInvalidCode || got.Valid() {
		t.Fatalf("a code two steps back, window unset: %+v, %v; want %v", got, err, client.TOTPInvalidCode)
	}
	three := 3
	request.Window = &three
	valid, err := c.VerifyTOTP(ctx, request)
	if err != nil || !valid.Valid() || valid.Counter != step-2 || valid.KeyID != s.primary.ID() || valid.NeedsReEncrypt {
		t.Fatalf("window 3: %+v, %v; want valid at step %d", valid, err, step-2)
	}
	request.LastCounter = &valid.Counter
	if got, err := c.VerifyTOTP(ctx, request); err != nil || got.Outcome != client.TOTPReplayed || got.Outcome.String() != "REPLAYED" {
		t.Fatalf("replayed: %+v, %v; want %v", got, err, client.TOTPReplayed)
	}

	hexToken := testkeys.Token(t, s.old, "3132333435363738393031323334353637383930", 1)
	code := totp.Defaults.Code([]byte("12345678901234567890"), totp.Defaults.Counter(time.Now()))
	if got, err := c.VerifyTOTP(ctx, client.TOTPVerifyRequest{Token: hexToken, Code: code, HexSecret: true}); err != nil || !got.Valid() || !got.NeedsReEncrypt {
		t.Fatalf("django-otp hex secret under the old key: %+v, %v", got, err)
	}
	if _, err := c.VerifyTOTP(ctx, client.TOTPVerifyRequest{Token: hexToken, Code: code}); !errors.Is(err, client.ErrInvalidTOTPSecret) {
		t.Fatalf("hex read as base32: %v, want ErrInvalidTOTPSecret", err)
	}
	if _, err := c.VerifyTOTP(ctx, client.TOTPVerifyRequest{Token: "garbage", Code: code}); !errors.Is(err, client.ErrInvalidToken) {
		t.Fatalf("garbage token: %v, want ErrInvalidToken", err)
	}
	if _, err := c.CreateTOTP(ctx, client.TOTPEnrolRequest{AccountName: "a:b"}); !errors.Is(err, client.ErrInvalidTOTPParameter) {
		t.Fatalf("account name with a colon: %v, want ErrInvalidTOTPParameter", err)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := &sidecar{primary: testkeys.New(t)}
	srv := server.New(server.Config{
		Keys: testkeys.NewSource(s.primary), Limits: testLimits, MaxMessageBytes: 4 << 20,
		AllowedMethods: []string{"Encrypt", "GetStatus"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	c := dial(t, servetest.Serve(t, srv, server.Listen, "127.0.0.1:0"))
	ctx := testContext(t)
	enc, err := c.Encrypt(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, enc.Token); !errors.Is(err, client.ErrMethodNotAllowed) || errors.Is(err, client.ErrInvalidToken) {
		t.Fatalf("Decrypt left out: %v, want ErrMethodNotAllowed", err)
	}
	status, err := c.Status(ctx)
	if err != nil || !slices.Equal(status.AllowedMethods, []string{"Encrypt", "GetStatus"}) {
		t.Fatalf("Status = %+v, %v", status, err)
	}
	want := client.Limits{MaxPlaintextBytes: 64, MaxTokenBytes: status.Limits.MaxTokenBytes, MaxBatchItems: 8, MaxMessageBytes: 4 << 20}
	if status.Limits != want || status.Limits.MaxTokenBytes <= 64 {
		t.Fatalf("Limits = %+v, want %+v", status.Limits, want)
	}
}
