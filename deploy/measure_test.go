package deploy

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// procStats reads a process's resident memory (VmRSS), its peak (VmHWM),
// both in KiB, and the CPU time it has used (all threads).
func procStats(t *testing.T, pid int) (rssKiB, hwmKiB int64, cpu time.Duration) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rssKiB = n
		case "VmHWM:":
			hwmKiB = n
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 14th and 15th fields of the line, in clock ticks
	// (100 a second on Linux).
	after := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(after[11], 10, 64)
	stime, _ := strconv.ParseInt(after[12], 10, 64)
	return rssKiB, hwmKiB, time.Duration(utime+stime) * 10 * time.Millisecond
}

// TestMeasureResources measures what docs/deployment.md reports and the
// Kubernetes resource requests are sized from: the sidecar's memory and
// CPU idle, at steady call rates, flat out, and with the largest batch.
// It only measures (nothing to assert on a shared machine), so it runs
// only with FERNET_SIDECAR_MEASURE=1:
//
//	FERNET_SIDECAR_MEASURE=1 go test -run TestMeasureResources -v ./deploy/
func TestMeasureResources(t *testing.T) {
	if os.Getenv("FERNET_SIDECAR_MEASURE") != "1" {
		t.Skip("measures only with FERNET_SIDECAR_MEASURE=1")
	}
	s := sidecartest.Start(t, imageBinary(t), []string{"DJANGO_ENCRYPTION_KEY=" + newKey(t), "OLD_DJANGO_ENCRYPTION_KEY=" + newKey(t)},
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	pid := s.Cmd.Process.Pid
	conn := servetest.Dial(t, s.Addr)
	client := fernetv1.NewFernetServiceClient(conn)
	plaintext := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP") // a 32-byte TOTP secret
	ctx := context.Background()
	enc, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: plaintext})
	if err != nil {
		t.Fatal(err)
	}

	// call alternates Encrypt and Decrypt, the app's usual mix.
	call := func(i int64) error {
		if i%2 == 0 {
			_, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: plaintext})
			return err
		}
		_, err := client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: enc.Token})
		return err
	}
	// phase runs calls for d: at rate calls/s, or flat out from 16 callers
	// when rate is 0. It reports calls/s achieved and the sidecar's CPU use.
	phase := func(name string, rate int, d time.Duration) {
		const callers = 16
		_, _, cpu0 := procStats(t, pid)
		start := time.Now()
		var n atomic.Int64
		var failed atomic.Value
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var tick <-chan time.Time
				if rate > 0 {
					ticker := time.NewTicker(time.Second * callers / time.Duration(rate))
					defer ticker.Stop()
					tick = ticker.C
				}
				for time.Since(start) < d {
					if tick != nil {
						<-tick
					}
					if err := call(n.Add(1)); err != nil {
						failed.Store(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		elapsed := time.Since(start)
		rss, hwm, cpu1 := procStats(t, pid)
		cores := (cpu1 - cpu0).Seconds() / elapsed.Seconds()
		callsPerSec := float64(n.Load()) / elapsed.Seconds()
		t.Logf("%-28s %8.0f calls/s  CPU %4.0f mcores  RSS %6.1f MiB  peak RSS %6.1f MiB",
			name, callsPerSec, cores*1000, float64(rss)/1024, float64(hwm)/1024)
	}

	time.Sleep(3 * time.Second)
	rss, hwm, cpu0 := procStats(t, pid)
	t.Logf("%-28s RSS %6.1f MiB  peak RSS %6.1f MiB", "started, idle 3s", float64(rss)/1024, float64(hwm)/1024)
	time.Sleep(10 * time.Second)
	rss, _, cpu1 := procStats(t, pid)
	t.Logf("%-28s CPU %4.1f mcores  RSS %6.1f MiB", "idle 10s more", (cpu1-cpu0).Seconds()/10*1000, float64(rss)/1024)

	phase("100 calls/s, 10s", 100, 10*time.Second)
	phase("1000 calls/s, 10s", 1000, 10*time.Second)
	phase("flat out, 16 callers, 10s", 0, 10*time.Second)

	// The largest batch the defaults allow: 10000 tokens in one call.
	tokens := make([]string, 10000)
	for i := range tokens {
		tokens[i] = enc.Token
	}
	_, _, cpu0 = procStats(t, pid)
	start := time.Now()
	for range 5 {
		if _, err := client.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{Tokens: tokens}); err != nil {
			t.Fatal(err)
		}
	}
	rss, hwm, cpu1 = procStats(t, pid)
	t.Logf("%-28s %8.0f items/s  CPU %4.0f mcores  RSS %6.1f MiB  peak RSS %6.1f MiB", "5 DecryptBatch x 10000",
		50000/time.Since(start).Seconds(), (cpu1-cpu0).Seconds()/time.Since(start).Seconds()*1000, float64(rss)/1024, float64(hwm)/1024)

	// The worst the default limits allow at once: 4 callers each sending
	// 10000 tokens of 200-byte plaintexts (3.5 MB, under the 4 MiB message
	// limit) and getting 2 MB back.
	big, err := client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte(strings.Repeat("x", 200))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range tokens {
		tokens[i] = big.Token
	}
	_, _, cpu0 = procStats(t, pid)
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if _, err := client.DecryptBatch(ctx, &fernetv1.DecryptBatchRequest{Tokens: tokens}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	rss, hwm, cpu1 = procStats(t, pid)
	t.Logf("%-28s %8.0f items/s  CPU %4.0f mcores  RSS %6.1f MiB  peak RSS %6.1f MiB", "4 x 3 DecryptBatch x 10000 x 200 B",
		120000/time.Since(start).Seconds(), (cpu1-cpu0).Seconds()/time.Since(start).Seconds()*1000, float64(rss)/1024, float64(hwm)/1024)

	time.Sleep(5 * time.Second)
	rss, _, _ = procStats(t, pid)
	t.Logf("%-28s RSS %6.1f MiB", "idle 5s after", float64(rss)/1024)
	s.Stop(t)
}
