package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fernet-sidecar/fernet-sidecar/internal/servetest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// The attacks of the security review (issue 12), run against the real
// binary on loopback. Each holds the sidecar's peak RSS under the memory
// limit of the shipped Kubernetes manifest while a client connected
// beforehand keeps getting answers. CI runs them at the sizes the review
// reproduced; FERNET_SIDECAR_ATTACK_SCALE=10 runs them ten times larger
// (docs/reliability.md has those figures).

// attackScale multiplies the size of every attack.
func attackScale(t *testing.T) int {
	value, ok := os.LookupEnv("FERNET_SIDECAR_ATTACK_SCALE")
	if !ok {
		return 1
	}
	scale, err := strconv.Atoi(value)
	if err != nil || scale < 1 {
		t.Fatalf("FERNET_SIDECAR_ATTACK_SCALE=%q: want a positive whole number", value)
	}
	return scale
}

// manifestMemoryLimit is the sidecar container's memory limit in
// deploy/kubernetes/deployment.yaml, in bytes.
func manifestMemoryLimit(t *testing.T) int64 {
	manifest, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "deploy", "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The sidecar is the first container, so its limits come first.
	m := regexp.MustCompile(`(?m)^\s+limits:\n\s+memory: (\d+)Mi$`).FindSubmatch(manifest)
	if m == nil {
		t.Fatal("no memory limit in the manifest")
	}
	mib, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return mib << 20
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 { return procStatusKiB(t, pid, "VmHWM") << 10 }

// underAttack is a sidecar with a client that connected before the attack.
type underAttack struct {
	*sidecartest.Sidecar
	client fernetv1.FernetServiceClient
	token  string
}

func startUnderAttack(t *testing.T) *underAttack {
	t.Helper()
	bin := sidecartest.Build(t, "cmd/fernet-sidecar")
	s := sidecartest.Start(t, bin, append([]string{"DJANGO_ENCRYPTION_KEY=" + testkeys.New(t).Encode()}, strings.Fields(os.Getenv("XENV"))...),
		"--addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	a := &underAttack{Sidecar: s, client: fernetv1.NewFernetServiceClient(servetest.Dial(t, s.Addr))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sealed, err := a.client.Encrypt(ctx, &fernetv1.EncryptRequest{Plaintext: []byte("JBSWY3DPEHPK3PXP")})
	if err != nil {
		t.Fatal(err)
	}
	a.token = sealed.GetToken()
	return a
}

// stillAnswers checks that the client connected before the attack gets a
// Decrypt answered.
func (a *underAttack) stillAnswers(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.client.Decrypt(ctx, &fernetv1.DecryptRequest{Token: a.token}); err != nil {
		t.Fatalf("Decrypt during the attack: %v", err)
	}
}

// checkPeakRSS fails the test when the peak RSS passed the manifest's
// memory limit, and logs it for docs/reliability.md either way.
func (a *underAttack) checkPeakRSS(t *testing.T, attack string) {
	t.Helper()
	peak, limit := peakRSS(t, a.Cmd.Process.Pid), manifestMemoryLimit(t)
	t.Logf("%s: peak RSS %d MiB (limit %d MiB)", attack, peak>>20, limit>>20)
	if peak >= limit {
		t.Errorf("%s: peak RSS %d MiB reached the manifest's memory limit of %d MiB", attack, peak>>20, limit>>20)
	}
}

// h2Conn is a raw HTTP/2 client connection, to send what no gRPC client
// would. A goroutine reads and drops the server's frames, so the server is
// never held up writing.
type h2Conn struct {
	conn    net.Conn
	framer  *http2.Framer
	headers bytes.Buffer
	encoder *hpack.Encoder
	nextID  uint32
	wire    int64 // bytes of header blocks sent
}

func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &h2Conn{conn: conn, framer: http2.NewFramer(conn, nil), nextID: 1}
	c.encoder = hpack.NewEncoder(&c.headers)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.framer.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go func() {
		reader := http2.NewFramer(nil, conn)
		for {
			if _, err := reader.ReadFrame(); err != nil {
				return
			}
		}
	}()
	return c
}

// openStream sends the HEADERS (and CONTINUATIONs) of a new call to method
// with extra header fields, and no message. It returns false once the
// server has closed the connection.
func (c *h2Conn) openStream(method string, extra ...hpack.HeaderField) bool {
	c.headers.Reset()
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method}, {Name: ":authority", Value: "sidecar"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}
	for _, f := range append(fields, extra...) {
		c.encoder.WriteField(f)
	}
	block := c.headers.Bytes()
	c.wire += int64(len(block))
	const maxFrame = 16 << 10
	first := block[:min(len(block), maxFrame)]
	err := c.framer.WriteHeaders(http2.HeadersFrameParam{StreamID: c.nextID, BlockFragment: first, EndHeaders: len(block) <= maxFrame})
	for rest := block[len(first):]; err == nil && len(rest) > 0; {
		chunk := rest[:min(len(rest), maxFrame)]
		rest = rest[len(chunk):]
		err = c.framer.WriteContinuation(c.nextID, len(rest) == 0, chunk)
	}
	c.nextID += 2
	return err == nil
}

const healthCheck = "/grpc.health.v1.Health/Check"

// TestAttackHeaderBomb: HPACK-compressed metadata that refers to one large
// dynamic-table entry thousands of times decodes to megabytes per call
// from a few KB on the wire. The review's 76 KB took RSS to 146 MB.
func TestAttackHeaderBomb(t *testing.T) {
	scale := attackScale(t)
	a := startUnderAttack(t)
	defer a.Stop(t)
	big := hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)}
	for _, target := range []struct{ name, addr, method string }{
		{"health", a.HealthAddr, healthCheck},
		{"api", a.Addr, "/fernet.v1.FernetService/Decrypt"},
	} {
		// 76 KB of references per scale step, 4,000 (15.6 MB decoded) a call.
		var wire int64
		for wire < int64(scale)*76_000 {
			c := dialH2(t, target.addr)
			for wire < int64(scale)*76_000 {
				refs := slices.Repeat([]hpack.HeaderField{big}, 4000)
				if !c.openStream(target.method, refs...) {
					break
				}
				wire = c.wire
			}
			c.conn.Close()
		}
		a.stillAnswers(t)
		t.Logf("%s: %d KB of header blocks sent", target.name, wire/1000)
	}
	a.checkPeakRSS(t, "header bomb")
}

// TestAttackEmptyStreams: many calls opened on one connection that never
// send a message. The review's 20,000 added 57 MB.
func TestAttackEmptyStreams(t *testing.T) {
	scale := attackScale(t)
	a := startUnderAttack(t)
	defer a.Stop(t)
	for _, target := range []struct{ addr, method string }{
		{a.HealthAddr, healthCheck},
		{a.Addr, "/fernet.v1.FernetService/Decrypt"},
	} {
		c := dialH2(t, target.addr)
		for range scale * 20_000 {
			if !c.openStream(target.method) {
				t.Fatalf("the server closed the connection after %d streams", c.nextID/2)
			}
		}
		a.stillAnswers(t)
		c.conn.Close()
	}
	a.checkPeakRSS(t, "empty streams")
}

// dialMany opens n connections to addr at once and runs greet on each;
// connections past the server's cap wait in the kernel's backlog or time
// out, as they would for an attacker.
func dialMany(t *testing.T, addr string, n int, greet func(net.Conn)) []net.Conn {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return
			}
			greet(conn)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, conn := range conns {
			conn.Close()
		}
	})
	return conns
}

// TestAttackIdleConnections: many HTTP/2 connections that say hello and
// then nothing. The review's 2,000 added 36 MB.
func TestAttackIdleConnections(t *testing.T) {
	scale := attackScale(t)
	a := startUnderAttack(t)
	defer a.Stop(t)
	hello := func(conn net.Conn) {
		conn.Write([]byte(http2.ClientPreface))
		http2.NewFramer(conn, nil).WriteSettings()
	}
	for _, addr := range []string{a.HealthAddr, a.Addr} {
		conns := dialMany(t, addr, scale*2000, hello)
		time.Sleep(time.Second) // let the server take what it will
		a.stillAnswers(t)
		t.Logf("%s: %d of %d connections made", addr, len(conns), scale*2000)
	}
	a.checkPeakRSS(t, "idle connections")
}

// TestAttackIdleMetricsConnections: scrapers that each make one request on
// a keep-alive connection and then hold it open. The review's 5,000 added
// 96 MB; now the connections are capped and dropped when idle.
func TestAttackIdleMetricsConnections(t *testing.T) {
	scale := attackScale(t)
	a := startUnderAttack(t)
	defer a.Stop(t)
	request := func(conn net.Conn) {
		fmt.Fprint(conn, "GET /metrics HTTP/1.1\r\nHost: sidecar\r\n\r\n")
	}
	conns := dialMany(t, a.MetricsAddr, scale*5000, request)
	time.Sleep(time.Second)
	a.stillAnswers(t)
	for _, conn := range conns {
		conn.Close()
	}
	t.Logf("%d of %d connections made", len(conns), scale*5000)
	// Once the attackers leave, scrapes work again.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(scrape(a.MetricsAddr), "fernet_admission_rejected_total") {
		if time.Now().After(deadline) {
			t.Fatal("/metrics does not answer 20 s after the attackers left")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.checkPeakRSS(t, "idle metrics connections")
}

// scrape returns /metrics, or "" when it cannot.
func scrape(addr string) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(conn, "GET /metrics HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
	var out bytes.Buffer
	out.ReadFrom(conn)
	return out.String()
}

// TestAttackBatchStorm: many concurrent 10,000-item, 4 MB EncryptBatch
// calls. The review's 16 peaked at 196 MB and a small Decrypt's p99 went
// from 1.3 ms to 7.6 s. Now batches wait, unread, for room in the bounds
// sized from the memory limit, those past the bound on waiting ones are
// refused with RESOURCE_EXHAUSTED, and small calls keep flowing. The storm comes
// from another process (TestBatchStormHelper), as an attacker's would, so
// that this one measures only the small calls.
func TestAttackBatchStorm(t *testing.T) {
	scale := attackScale(t)
	a := startUnderAttack(t)
	defer a.Stop(t)
	const seconds = 3
	helper := exec.Command(os.Args[0], "-test.run=^TestBatchStormHelper$", "-test.v")
	helper.Env = append(os.Environ(), "FERNET_SIDECAR_STORM="+a.Addr+" "+strconv.Itoa(scale*16)+" "+strconv.Itoa(seconds))
	var out bytes.Buffer
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the storm build up
	var latencies []time.Duration
	for start := time.Now(); time.Since(start) < seconds*time.Second-time.Second; {
		began := time.Now()
		a.stillAnswers(t)
		latencies = append(latencies, time.Since(began))
		time.Sleep(5 * time.Millisecond)
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("the storm failed: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`storm: (\d+) done, (\d+) refused`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the storm did not report:\n%s", out.String())
	}
	slices.Sort(latencies)
	p99 := latencies[len(latencies)*99/100]
	t.Logf("%s batches done, %s refused; Decrypt p99 %v over %d calls", m[1], m[2], p99, len(latencies))
	if m[1] == "0" {
		t.Error("no batch got through: admission must let some work in")
	}
	// The p99 is a measurement, not a verdict of the suite: under -race,
	// beside the other packages' tests, every wake-up of the client and
	// the server waits its turn behind other processes, and the p99 then
	// measures them, not the sidecar. FERNET_SIDECAR_ATTACK_P99=1 judges
	// the 50 ms target, for a measuring run on a machine left alone
	// (docs/reliability.md).
	t.Logf("load average %.1f on %d CPUs", loadAverage(t), runtime.NumCPU())
	if os.Getenv("FERNET_SIDECAR_ATTACK_P99") == "1" && p99 > 50*time.Millisecond {
		t.Errorf("a small Decrypt's p99 during the storm is %v, want under 50 ms", p99)
	}
	counted := regexp.MustCompile(`fernet_admission_rejected_total\{reason="batches"\} [1-9]`)
	if m[2] != "0" && !counted.MatchString(a.Metrics(t)) {
		t.Error("refused batches are not counted in fernet_admission_rejected_total")
	}
	a.checkPeakRSS(t, "batch storm")
}

// loadAverage is the machine's one-minute load average.
func loadAverage(t *testing.T) float64 {
	content, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	var load float64
	if _, err := fmt.Sscan(string(content), &load); err != nil {
		t.Fatalf("/proc/loadavg: %v", err)
	}
	return load
}

// TestBatchStormHelper is TestAttackBatchStorm's attacker, run as its own
// process: FERNET_SIDECAR_STORM is "address callers seconds".
func TestBatchStormHelper(t *testing.T) {
	var addr string
	var callers, seconds int
	if _, err := fmt.Sscan(os.Getenv("FERNET_SIDECAR_STORM"), &addr, &callers, &seconds); err != nil {
		t.Skip("run by TestAttackBatchStorm")
	}
	plaintexts := make([][]byte, 10_000)
	for i := range plaintexts {
		plaintexts[i] = bytes.Repeat([]byte{'p'}, 400)
	}
	// Encoded once, and the answers never decoded, so that the attacker's
	// CPU goes to sending rather than to protobuf.
	request, err := proto.Marshal(&fernetv1.EncryptBatchRequest{Plaintexts: plaintexts})
	if err != nil {
		t.Fatal(err)
	}
	conns := rawConns(t, addr, 8, grpc.MaxCallRecvMsgSize(64<<20)) // the tokens of 4 MB are 6 MB
	var storm sync.WaitGroup
	var done, refused atomic.Int64
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	for i := range callers {
		storm.Go(func() {
			for time.Now().Before(end) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := conns[i%len(conns)].Invoke(ctx, "/fernet.v1.FernetService/EncryptBatch", request, new([]byte))
				cancel()
				switch status.Code(err) {
				case codes.OK:
					done.Add(1)
				case codes.ResourceExhausted:
					refused.Add(1)
					time.Sleep(10 * time.Millisecond)
				default:
					t.Errorf("a batch failed: %v", err)
					return
				}
			}
		})
	}
	storm.Wait()
	t.Logf("storm: %d done, %d refused", done.Load(), refused.Load())
}

// rawCodec sends a message that is already encoded ([]byte) and drops what
// comes back.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(mem.BufferSlice, any) error { return nil }

func (rawCodec) Name() string { return "proto" }

// rawConns dials n connections to addr whose calls send messages already
// encoded (rawCodec), with callOpts. They are closed when the test ends.
func rawConns(t *testing.T, addr string, n int, callOpts ...grpc.CallOption) []*grpc.ClientConn {
	t.Helper()
	callOpts = append([]grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}, callOpts...)
	conns := make([]*grpc.ClientConn, n)
	for i := range conns {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(callOpts...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conns[i] = conn
	}
	return conns
}

// TestAttackIdleBatchStreams: batch calls opened with headers and no
// message each held a batch's bytes forever, so that two (the whole
// budget at the default 64 MiB limit) made every other batch wait past its
// deadline. Now a call whose message has not come 10 s after it got its
// bytes is refused, and the batch behind it gets in; and the calls of one
// connection take at most one message's room.
func TestAttackIdleBatchStreams(t *testing.T) {
	a := startUnderAttack(t)
	defer a.Stop(t)
	for range 2 { // one connection reads one message at a time: two of them
		c := dialH2(t, a.Addr)
		defer c.conn.Close() // before Stop, which would wait for it
		if !c.openStream("/fernet.v1.FernetService/InspectBatch") {
			t.Fatal("the server closed the connection")
		}
	}
	time.Sleep(100 * time.Millisecond) // let their headers reach the server
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := a.client.InspectBatch(ctx, &fernetv1.InspectBatchRequest{Tokens: []string{a.token}}); err != nil {
		t.Fatalf("InspectBatch after %v behind two streams that send nothing: %v", time.Since(started), err)
	}
	t.Logf("InspectBatch answered after %v", time.Since(started))
	// The second is refused a moment after the first made room.
	waitForMetric(t, a.Sidecar, `fernet_admission_rejected_total{reason="slow_messages"} 2`)
	a.stillAnswers(t)
}

// TestAttackLargeUnaryCalls: 200 concurrent Encrypt calls of 4 MiB, the
// largest message gRPC takes, on 8 connections. Each was read in full
// before its plaintext was refused as over 64 KiB, and RSS peaked at
// 921 MiB. Now they wait, unread, for room in the bytes of calls being
// read, as batches do.
func TestAttackLargeUnaryCalls(t *testing.T) {
	scale := attackScale(t)
	a := startUnderAttack(t)
	defer a.Stop(t)
	request, err := proto.Marshal(&fernetv1.EncryptRequest{Plaintext: bytes.Repeat([]byte{'p'}, 4<<20-64)})
	if err != nil {
		t.Fatal(err)
	}
	conns := rawConns(t, a.Addr, 8)
	var callers sync.WaitGroup
	var refused, tooLarge atomic.Int64
	for i := range scale * 200 {
		callers.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := conns[i%len(conns)].Invoke(ctx, "/fernet.v1.FernetService/Encrypt", request, new([]byte))
			switch status.Code(err) {
			case codes.InvalidArgument:
				tooLarge.Add(1)
			case codes.ResourceExhausted:
				refused.Add(1)
			default:
				t.Errorf("a 4 MiB Encrypt = %v, want INVALID_ARGUMENT or RESOURCE_EXHAUSTED", err)
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // let the calls pile up
	a.stillAnswers(t)
	callers.Wait()
	t.Logf("%d refused as too large, %d as too many", tooLarge.Load(), refused.Load())
	a.checkPeakRSS(t, "large unary calls")
}

// TestAttackHealthWatches: 16 connections to the health port, its cap,
// each holding a Watch open, kept it from ever answering a new probe's
// Check, and the kubelet would restart the pod forever. Now Watch is not
// served there, and a connection left idle is closed within 5 s.
func TestAttackHealthWatches(t *testing.T) {
	a := startUnderAttack(t)
	defer a.Stop(t)
	for range 16 {
		conn := servetest.Dial(t, a.HealthAddr)
		watch, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, err := watch.Recv(); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the watches reach the server
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	probe := healthpb.NewHealthClient(servetest.Dial(t, a.HealthAddr))
	resp, err := probe.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("a probe's Check after %v behind 16 watchers = %v, %v; want SERVING", time.Since(started), resp, err)
	}
	t.Logf("the probe was answered after %v", time.Since(started))
}
