package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// load runs callers that each encrypt and decrypt in a loop until stop is
// closed or rounds run out, and reports every call's error.
func load(client fernetv1.FernetServiceClient, callers, rounds int, stop <-chan struct{}, report func(error)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for caller := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				plaintext := []byte(fmt.Sprintf("caller %d round %d", caller, round))
				sealed, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: plaintext})
				if err == nil {
					var opened *fernetv1.DecryptResponse
					opened, err = client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: sealed.GetToken()})
					if err == nil && string(opened.GetPlaintext()) != string(plaintext) {
						err = fmt.Errorf("decrypted to %q", opened.GetPlaintext())
					}
				}
				cancel()
				report(err)
			}
		}()
	}
	return &wg
}

// errorSet collects the distinct messages of the errors that goroutines
// met, for the test to report once they are done.
type errorSet struct{ messages sync.Map }

func (s *errorSet) add(err error) { s.messages.Store(err.Error(), true) }

// report fails t once per message, formatted by format (one %s).
func (s *errorSet) report(t *testing.T, format string) {
	t.Helper()
	s.messages.Range(func(msg, _ any) bool {
		t.Errorf(format, msg)
		return true
	})
}

func TestSIGTERMUnderLoad(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	key := testkeys.New(t)
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + key.Encode()},
		"--addr", "127.0.0.1:0", "--metrics-addr", "", "--shutdown-timeout", "5s")
	conn := servetest.Dial(t, s.Addr)
	client := fernetv1.NewFernetServiceClient(conn)
	watching, stopWatching := context.WithCancel(context.Background())
	defer stopWatching()
	watch, err := healthpb.NewHealthClient(servetest.Dial(t, s.Addr)).Watch(watching, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before SIGTERM = %v, %v", first, err)
	}

	var ok, unavailable atomic.Int64
	var firstRefusal atomic.Int64 // when the first call was refused, in ns since the epoch
	var other errorSet
	stop := make(chan struct{})
	callers := load(client, 16, 1_000_000, stop, func(err error) {
		switch status.Code(err) {
		case codes.OK:
			ok.Add(1)
		case codes.Unavailable:
			unavailable.Add(1)
			firstRefusal.CompareAndSwap(0, time.Now().UnixNano())
		default:
			other.add(err)
		}
	})
	time.Sleep(300 * time.Millisecond)
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notServing, err := watch.Recv()
	notServingAt := time.Now().UnixNano()
	if err != nil || notServing.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after SIGTERM = %v, %v; want NOT_SERVING", notServing, err)
	}
	stopWatching() // a Watch stream never ends by itself and would hold the drain to its timeout
	select {
	case err := <-s.Exited():
		if err != nil {
			t.Fatalf("exit after SIGTERM under load: %v\n%s", err, s.Log())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM (grace period 5s)")
	}
	close(stop)
	callers.Wait()

	other.report(t, "a call failed with something other than UNAVAILABLE: %s")
	if ok.Load() == 0 {
		t.Fatal("no call succeeded before the shutdown")
	}
	if refused := firstRefusal.Load(); refused != 0 && refused < notServingAt-int64(time.Second) {
		t.Error("calls were refused before health went NOT_SERVING")
	}
	t.Logf("%d calls completed, %d refused with UNAVAILABLE after SIGTERM", ok.Load(), unavailable.Load())
}

func TestKeyFileFaultsUnderLoad(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	key := testkeys.New(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY_FILE=" + keyFile}, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	defer s.Stop(t)

	var calls atomic.Int64
	var failures errorSet
	stop := make(chan struct{})
	callers := load(fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr)), 8, 1_000_000, stop, func(err error) {
		calls.Add(1)
		if err != nil {
			failures.add(err)
		}
	})
	faults := []struct {
		name  string
		apply func() error
	}{
		{"garbage", func() error { return os.WriteFile(keyFile, []byte("garbage, not a key"), 0o600) }},
		{"emptied", func() error { return os.WriteFile(keyFile, nil, 0o600) }},
		{"deleted", func() error { return os.Remove(keyFile) }},
	}
	for i, fault := range faults {
		if err := fault.apply(); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`fernet_key_reloads_total{outcome="failure"} %d`, i+1)
		waitForMetric(t, s, want)
	}
	if err := os.WriteFile(keyFile, []byte(key.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	waitForMetric(t, s, "fernet_key_last_reload_successful 1")
	close(stop)
	callers.Wait()
	failures.report(t, "a call failed while the key file was broken: %s")
	if calls.Load() == 0 {
		t.Fatal("no calls were made")
	}
	t.Logf("%d calls, all succeeded, through garbage, empty and deleted key files", calls.Load())
}

func waitForMetric(t *testing.T, s *sidecartest.Sidecar, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Metrics(t), want) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlowAndHammeredMetricsDoNotStallCalls: scrapers that hold the metrics
// endpoint open or hit it in a loop must not hold up gRPC calls.
func TestSlowAndHammeredMetricsDoNotStallCalls(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + testkeys.New(t).Encode()},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	defer s.Stop(t)
	stop := make(chan struct{})
	var scrapers sync.WaitGroup
	for range 4 { // slow: send half a request and never finish it
		conn, err := net.Dial("tcp", s.MetricsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
	}
	var scrapes atomic.Int64
	for range 8 { // hammering
		scrapers.Add(1)
		go func() {
			defer scrapers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := http.Get("http://" + s.MetricsAddr + "/metrics"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					scrapes.Add(1)
				}
			}
		}()
	}
	var failed atomic.Int64
	var calls atomic.Int64
	load(fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr)), 8, 50, nil, func(err error) {
		calls.Add(1)
		if err != nil {
			failed.Add(1)
		}
	}).Wait()
	close(stop)
	scrapers.Wait()
	if failed.Load() != 0 || scrapes.Load() == 0 {
		t.Fatalf("%d of %d calls failed during %d scrapes", failed.Load(), calls.Load(), scrapes.Load())
	}
}

// TestNoSecretLeavesTheProcess runs a full session (keys loaded, calls of
// every kind and failure, reloads, shutdown) and looks for every secret, in
// every encoding, in the logs, the errors and /metrics.
func TestNoSecretLeavesTheProcess(t *testing.T) {
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	primary, old, next := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(primary.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY_FILE=" + keyFile, "OLD_DJANGO_ENCRYPTION_KEY=" + old.Encode()},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--audit-calls", "--log-level", "debug")
	client := fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	plaintexts := []string{"JBSWY3DPEHPK3PXP", "user@example.com", "4111 1111 1111 1111"}
	var tokens, errs []string
	record := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, p := range plaintexts {
		sealed, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte(p)})
		record(err)
		tokens = append(tokens, sealed.GetToken())
		underOld, _ := fernet.NewKeyring(old).Encrypt([]byte(p))
		tokens = append(tokens, underOld.Token)
		unknown, _ := fernet.NewKeyring(testkeys.New(t)).Encrypt([]byte(p))
		tokens = append(tokens, unknown.Token)
	}
	expired, _ := fernet.NewKeyring(primary).EncryptAtTime([]byte(plaintexts[0]), 1)
	future, _ := fernet.NewKeyring(primary).EncryptAtTime([]byte(plaintexts[0]), 1<<40)
	tokens = append(tokens, expired.Token, future.Token)
	ttl := int64(60)
	for _, token := range tokens {
		_, err := client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: token, TtlSeconds: &ttl})
		record(err)
		_, err = client.ReEncrypt(ctx, &fernetv1.ReEncryptRequest{Token: token})
		record(err)
		_, err = client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: token[:len(token)/2]})
		record(err)
	}
	batch, err := client.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{Tokens: tokens, TtlSeconds: &ttl})
	record(err)
	for _, result := range batch.GetResults() {
		errs = append(errs, result.GetError().GetMessage())
	}
	_, err = client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: make([]byte, 1<<20)})
	record(err)
	totpSecrets := totpSession(ctx, t, client, primary, record)
	inspected, err := client.InspectBatch(ctx, &fernetv1.InspectBatchRequest{Tokens: tokens, TtlSeconds: &ttl})
	record(err)
	for _, result := range inspected.GetResults() {
		errs = append(errs, result.GetError().GetMessage())
	}
	// Reloads: a bad file, then a new key.
	for _, content := range []string{"not a key " + plaintexts[0], next.Encode()} {
		if err := os.WriteFile(keyFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	waitForMetric(t, s, `fernet_key_info{key_id="`+next.ID()+`",role="primary"} 1`)
	metrics := s.Metrics(t)
	s.Stop(t)

	if len(errs) < 20 {
		t.Fatalf("only %d errors were produced; the session did not exercise the failures", len(errs))
	}
	haystacks := map[string]string{"logs": s.Log(), "errors": strings.Join(errs, "\n"), "metrics": metrics}
	for _, key := range []*fernet.Key{primary, old, next} {
		raw, _ := base64.URLEncoding.DecodeString(key.Encode())
		for encoding, secret := range map[string]string{
			"url-safe base64":      key.Encode(),
			"url-safe, unpadded":   strings.TrimRight(key.Encode(), "="),
			"standard base64":      base64.StdEncoding.EncodeToString(raw),
			"hex":                  hex.EncodeToString(raw),
			"HEX":                  strings.ToUpper(hex.EncodeToString(raw)),
			"signing half, base64": base64.StdEncoding.EncodeToString(raw[:16]),
			"encryption half, hex": hex.EncodeToString(raw[16:]),
			"raw bytes":            string(raw),
		} {
			checkAbsent(t, haystacks, "key "+key.ID()+" as "+encoding, secret)
		}
	}
	for _, p := range plaintexts {
		checkAbsent(t, haystacks, "plaintext", p)
		checkAbsent(t, haystacks, "plaintext as base64", base64.StdEncoding.EncodeToString([]byte(p)))
	}
	for _, secret := range totpSecrets {
		checkAbsent(t, haystacks, "TOTP secret", secret)
	}
	for _, token := range tokens {
		checkAbsent(t, haystacks, "token", token)
		checkAbsent(t, haystacks, "half a token", token[:len(token)/2])
	}
	// Every byte of every input: no error message may hold a run of an
	// input or name one of its decoded bytes.
	for _, msg := range errs {
		for _, input := range append(slices.Clone(tokens), plaintexts...) {
			if what := testenv.EchoedInput(msg, input); what != "" {
				t.Errorf("the error %q echoes its input: %s", msg, what)
			}
		}
	}
}

// totpSession enrols two TOTP secrets and checks codes of every outcome
// and failure against them, reporting each error to record. It returns the
// secrets in every form they could leak in.
func totpSession(ctx context.Context, t *testing.T, client fernetv1.FernetServiceClient, primary *fernet.Key, record func(error)) []string {
	t.Helper()
	var secrets []string
	for _, enrolment := range []struct {
		req    *fernetv1.CreateTOTPRequest
		params totp.Params
	}{
		{&fernetv1.CreateTOTPRequest{AccountName: "alice@example.com", Issuer: "Example"}, totp.Defaults},
		{
			&fernetv1.CreateTOTPRequest{AccountName: "bob", SecretBytes: 64, Algorithm: fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA512, Digits: 8},
			totp.Params{Digits: 8, PeriodSeconds: 30, Algorithm: totp.SHA512},
		},
	} {
		req, params := enrolment.req, enrolment.params
		enrolled, err := client.CreateTOTP(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := fernet.NewKeyring(primary).Decrypt(enrolled.GetToken())
		if err != nil {
			t.Fatal(err)
		}
		secret, err := totp.DecodeBase32(opened.Plaintext)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, string(opened.Plaintext), strings.ToLower(string(opened.Plaintext)), hex.EncodeToString(secret), string(secret))
		code := params.Code(secret, params.Counter(time.Now()))
		verify := func(code string, lastCounter *uint64, encoding fernetv1.TOTPSecretEncoding, token string) *fernetv1.VerifyTOTPResponse {
			resp, err := client.VerifyTOTP(ctx, &fernetv1.VerifyTOTPRequest{
				Token: token, Code: code, LastCounter: lastCounter, Digits: req.GetDigits(), Algorithm: req.GetAlgorithm(), Encoding: encoding,
			})
			record(err)
			return resp
		}
		base32 := fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_BASE32
		valid := verify(code, nil, base32, enrolled.GetToken())
		if valid.GetOutcome() != fernetv1.TOTPOutcome_TOTP_OUTCOME_VALID {
			t.Fatalf("VerifyTOTP of the current code = %v", valid)
		}
		counter := valid.GetCounter()
		verify(code, &counter, base32, enrolled.GetToken())                                                    // replayed
		verify(strings.Repeat("0", params.Digits), nil, base32, enrolled.GetToken())                           // most likely wrong
		verify(code, nil, fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_HEX, enrolled.GetToken())           // not hex
		verify(code, nil, base32, enrolled.GetToken()[:len(enrolled.GetToken())/2])                            // truncated
		verify(code, nil, base32, strings.Replace(enrolled.GetToken(), enrolled.GetToken()[20:24], "AAAA", 1)) // altered
	}
	return secrets
}

func checkAbsent(t *testing.T, haystacks map[string]string, what, secret string) {
	t.Helper()
	for where, text := range haystacks {
		if strings.Contains(text, secret) {
			t.Errorf("%s appears in the %s", what, where)
		}
	}
}
