package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// soakCalls is the CI run's size; FERNET_SIDECAR_SOAK_CALLS=1000000 gives
// the full soak.
const soakCalls = 40_000

// TestSoak makes mixed calls from 64 callers against the real binary, one
// in ten with a bad token, and checks that nothing else fails, that every
// bad token is refused for its own reason and counted exactly once, and
// that memory and goroutines settle.
func TestSoak(t *testing.T) {
	calls := soakCalls
	if n, err := strconv.Atoi(os.Getenv("FERNET_SIDECAR_SOAK_CALLS")); err == nil && n > 0 {
		calls = n
	}
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	primary, old := testkeys.New(t), testkeys.New(t)
	s := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + primary.Encode(), "OLD_DJANGO_ENCRYPTION_KEY=" + old.Encode()},
		"--addr", "unix://"+t.TempDir()+"/fernet.sock", "--metrics-addr", "127.0.0.1:0")
	defer s.Stop(t)
	client := fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr))
	// The connection's own goroutines belong to the baseline.
	if _, err := client.GetStatus(context.Background(), &fernetv1.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	baselineGoroutines := metricValue(t, s.Metrics(t), "go_goroutines")

	mix := newSoakMix(t, primary, old)
	var (
		next       atomic.Int64
		sentBad    sync.Map // reason -> *atomic.Int64
		unexpected errorSet
		rssAtTenth atomic.Int64
	)
	var callers sync.WaitGroup
	started := time.Now()
	for range 64 {
		callers.Add(1)
		go func() {
			defer callers.Done()
			for {
				i := next.Add(1)
				if i > int64(calls) {
					return
				}
				if i == int64(calls)/10 {
					rssAtTenth.Store(rssKiB(t, s.Cmd.Process.Pid))
				}
				reasons, err := mix.call(client, int(i))
				if err != nil {
					unexpected.add(err)
				}
				for _, reason := range reasons {
					counter, _ := sentBad.LoadOrStore(reason, new(atomic.Int64))
					counter.(*atomic.Int64).Add(1)
				}
			}
		}()
	}
	callers.Wait()
	elapsed := time.Since(started)
	unexpected.report(t, "unexpected: %s")

	metrics := s.Metrics(t)
	totalBad := int64(0)
	for _, reason := range []string{reasons.Malformed, reasons.InvalidSignature, reasons.Expired, reasons.FutureTimestamp} {
		var sent int64
		if counter, ok := sentBad.Load(reason); ok {
			sent = counter.(*atomic.Int64).Load()
		}
		totalBad += sent
		counted := metricValue(t, metrics, `fernet_decrypt_failures_total{reason="`+strings.ToLower(reason)+`"}`)
		if int64(counted) != sent {
			t.Errorf("fernet_decrypt_failures_total{reason=%q} = %v, but %d such tokens were sent", strings.ToLower(reason), counted, sent)
		}
	}
	if totalBad < int64(calls)/20 {
		t.Errorf("only %d bad tokens in %d calls: the mix is broken", totalBad, calls)
	}

	rssEnd := rssKiB(t, s.Cmd.Process.Pid)
	if tenth := rssAtTenth.Load(); float64(rssEnd) > 1.2*float64(tenth) {
		t.Errorf("RSS grew from %d KiB after 10%% of the calls to %d KiB at the end (more than 20%%)", tenth, rssEnd)
	}
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, s.Metrics(t), "go_goroutines") > baselineGoroutines+2 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %v, baseline %v: not back after the load", metricValue(t, s.Metrics(t), "go_goroutines"), baselineGoroutines)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("soak: %d calls (%d bad tokens) from 64 callers in %v (%.0f calls/s); RSS %d KiB after 10%%, %d KiB at the end",
		calls, totalBad, elapsed.Round(time.Millisecond), float64(calls)/elapsed.Seconds(), rssAtTenth.Load(), rssEnd)
}

// soakMix is the calls of the soak, by index: mostly good, one in ten bad.
type soakMix struct {
	good, underOld string
	bad            []struct {
		token, reason string
		ttl           *int64
	}
}

func newSoakMix(t *testing.T, primary, old *fernet.Key) *soakMix {
	seal := func(key *fernet.Key, timestamp uint64) string {
		sealed, err := fernet.NewKeyring(key).EncryptAtTime([]byte("JBSWY3DPEHPK3PXP"), timestamp)
		if err != nil {
			t.Fatal(err)
		}
		return sealed.Token
	}
	now := uint64(time.Now().Unix())
	ttl := int64(3600)
	m := &soakMix{good: seal(primary, now), underOld: seal(old, now)}
	m.bad = []struct {
		token, reason string
		ttl           *int64
	}{
		{m.good[:40], reasons.Malformed, nil},
		{seal(testkeys.New(t), now), reasons.InvalidSignature, nil},
		{seal(primary, now-7200), reasons.Expired, &ttl},
		{seal(primary, now+7200), reasons.FutureTimestamp, &ttl},
	}
	return m
}

// call makes call i and returns the reasons of the bad tokens it sent; an
// error is anything other than what was expected.
func (m *soakMix) call(client fernetv1.FernetServiceClient, i int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if i%10 == 0 {
		bad := m.bad[(i/10)%len(m.bad)]
		if i%20 == 0 { // half of the bad tokens travel in a batch, beside good ones
			resp, err := client.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{Tokens: []string{m.good, bad.token}, TtlSeconds: bad.ttl})
			if err != nil {
				return nil, err
			}
			if got := resp.GetResults()[1].GetError().GetReason(); got != bad.reason || resp.GetResults()[0].GetOk() == nil {
				return nil, fmt.Errorf("batch with a %s token: results %v", bad.reason, resp.GetResults())
			}
			return []string{bad.reason}, nil
		}
		_, err := client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: bad.token, TtlSeconds: bad.ttl})
		if got := reasonOf(err); got != bad.reason {
			return nil, fmt.Errorf("a %s token was refused with %q (%v)", bad.reason, got, err)
		}
		return []string{bad.reason}, nil
	}
	var err error
	switch i % 5 {
	case 0, 1:
		_, err = client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: m.good})
	case 2:
		_, err = client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte("JBSWY3DPEHPK3PXP")})
	case 3:
		_, err = client.ReEncrypt(ctx, &fernetv1.ReEncryptRequest{Token: m.underOld})
	case 4:
		_, err = client.ReEncryptBatch(ctx, &fernetv1.ReEncryptBatchRequest{Tokens: []string{m.underOld, m.good, m.underOld}})
	}
	return nil, err
}

func reasonOf(err error) string {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// metricValue reads one sample, by its name and labels as printed, from a
// Prometheus text exposition.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	match := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(exposition)
	if match == nil {
		t.Fatalf("no sample %s", series)
	}
	v, err := strconv.ParseFloat(match[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rssKiB is a process's resident memory, from /proc.
func rssKiB(t *testing.T, pid int) int64 { return procStatusKiB(t, pid, "VmRSS") }

// procStatusKiB is a field of /proc/PID/status given in kB (VmRSS, VmHWM).
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), field+":"); ok {
			kib, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kib
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}
