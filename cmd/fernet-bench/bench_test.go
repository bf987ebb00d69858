package main

import (
	"context"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// The echo server's answers must be as large as the sidecar's, or target 2
// and 3 compare different amounts of work on the wire.
func TestEchoAnswersAreTheSidecarsSize(t *testing.T) {
	w, err := newWorkload(10)
	if err != nil {
		t.Fatal(err)
	}
	ring := fernet.NewKeyring(w.primary, w.old)
	opened, err := ring.Decrypt(w.token)
	if err != nil {
		t.Fatal(err)
	}
	sidecar := &fernetv1.DecryptResponse{Plaintext: opened.Plaintext, KeyId: opened.KeyID, Timestamp: opened.Timestamp}
	echo, err := (&echoService{}).Decrypt(context.Background(), w.decryptRequest)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := proto.Size(sidecar), proto.Size(echo); a != b {
		t.Errorf("Decrypt: the sidecar answers %d bytes, echo %d", a, b)
	}

	var results []*fernetv1.ReEncryptBatchResult
	for _, token := range w.oldTokens {
		re, err := ring.ReEncrypt(token)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, &fernetv1.ReEncryptBatchResult{Result: &fernetv1.ReEncryptBatchResult_Ok{
			Ok: &fernetv1.ReEncryptResponse{Token: re.Token, KeyId: re.KeyID, Changed: re.Changed},
		}})
	}
	echoBatch, err := (&echoService{}).ReEncryptBatch(context.Background(), w.batchRequest)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := proto.Size(&fernetv1.ReEncryptBatchResponse{Results: results}), proto.Size(echoBatch); a != b {
		t.Errorf("ReEncryptBatch: the sidecar answers %d bytes, echo %d", a, b)
	}
	if err := w.checkBatch(&fernetv1.ReEncryptBatchResponse{Results: results}); err != nil {
		t.Errorf("checkBatch refuses a right answer: %v", err)
	}
	if err := w.checkBatch(echoBatch); err == nil {
		t.Error("checkBatch accepts the echo's answer, whose tokens are still under the old key")
	}
}

func TestSummarize(t *testing.T) {
	for _, tt := range []struct {
		in          []float64
		median, min float64
	}{
		{[]float64{3, 1, 2}, 2, 1},
		{[]float64{4, 1, 3, 2}, 2.5, 1},
		{[]float64{5}, 5, 5},
	} {
		s := summarize(tt.in)
		if !s.ok || s.median != tt.median || s.min != tt.min {
			t.Errorf("summarize(%v) = %+v", tt.in, s)
		}
	}
	if s := summarize(nil); s.ok || s.format("ns") != "n/a" {
		t.Errorf("summarize(nil) = %+v", s)
	}
}

func TestBar(t *testing.T) {
	atMost, atLeast := bar{atMost: true, value: 1.3}, bar{value: 20}
	for _, tt := range []struct {
		b    bar
		v    float64
		want string
	}{
		{atMost, 1.3, "yes"}, {atMost, 1.31, "**no**"}, {atLeast, 20, "yes"}, {atLeast, 19.9, "**no**"}, {atLeast, math.NaN(), "n/a"},
	} {
		if got := tt.b.met(tt.v); got != tt.want {
			t.Errorf("%v met(%v) = %q, want %q", tt.b, tt.v, got, tt.want)
		}
	}
}

func TestBenchLine(t *testing.T) {
	m := benchLine.FindStringSubmatch("BenchmarkKeyring/ReEncrypt/32B-2   \t 1000000\t      1104 ns/op\t     144 B/op\t       1 allocs/op")
	if m == nil || m[1] != "Keyring/ReEncrypt/32B" || m[2] != "1104" || m[3] != "1" {
		t.Fatalf("benchLine match = %q", m)
	}
}

// The /proc readers work on a process of ours.
func TestProcReaders(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	s := &server{cmd: cmd}
	time.Sleep(50 * time.Millisecond)
	rss, peak, err := s.memory()
	if err != nil || rss <= 0 || peak < rss {
		t.Fatalf("memory() = %v, %v, %v", rss, peak, err)
	}
	if cpu, err := s.cpuTime(); err != nil || cpu < 0 {
		t.Fatalf("cpuTime() = %v, %v", cpu, err)
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		os.Exit(0) // not Linux: nothing here can run
	}
	os.Exit(m.Run())
}
