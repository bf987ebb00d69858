// Command fernet-bench measures fernet-sidecar against the targets of
// issue #5 and prints one markdown table: each row the project's figure,
// the comparison's figure from the same run, and their ratio.
//
// From the repository root:
//
//	go run ./cmd/fernet-bench
//
// It builds the sidecar (or takes one with -sidecar) and starts it on a
// Unix socket with generated keys, starts a bare grpc-go echo server
// (this binary, as "fernet-bench echo") with the same messages, runs the
// engine's benchmarks against the floor (go test -bench, compiled once),
// and runs Debian's /usr/bin/python3 for the in-process cryptography
// figures and the Python client. Every round starts the servers afresh;
// each figure is the median of the rounds, with the min-max beside it.
// A measurement that cannot run (no Python client, no grpcio) is n/a with
// the reason. The defaults take about two minutes on 2 cores.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	benchtime   time.Duration
	callers     int
	batchItems  int
	sidecar     string
	python      string
	repo        string
	skipEngine  bool
	skipPython  bool
	keepTempDir bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		os.Exit(runEcho(os.Args[2:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("fernet-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; every figure is the median of the rounds")
	fs.DurationVar(&o.duration, "duration", time.Second, "how long each load is measured, per round")
	fs.DurationVar(&o.warmup, "warmup", 250*time.Millisecond, "unmeasured load before each measurement")
	fs.DurationVar(&o.benchtime, "benchtime", 100*time.Millisecond, "-test.benchtime of each engine benchmark; a round runs each three times")
	fs.IntVar(&o.callers, "callers", 32, "concurrent callers of the unary load (target 2)")
	fs.IntVar(&o.batchItems, "batch", 1000, "tokens per batch call (targets 3 and 4)")
	fs.StringVar(&o.sidecar, "sidecar", "", "a fernet-sidecar binary to measure (default: go build ./cmd/fernet-sidecar)")
	fs.StringVar(&o.python, "python", "/usr/bin/python3", "Python with python3-cryptography and python3-grpcio (Debian's)")
	fs.StringVar(&o.repo, "repo", "", "the repository root (default: the main module's directory, from go list -m)")
	fs.BoolVar(&o.skipEngine, "skip-engine", false, "skip the engine benchmarks (target 1)")
	fs.BoolVar(&o.skipPython, "skip-python", false, "skip everything that needs Python (targets 3 and 4 lose their comparisons)")
	fs.BoolVar(&o.keepTempDir, "keep", false, "keep the temporary directory (logs, binaries) and print its path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.rounds < 1 || o.duration <= 0 || o.callers < 1 || o.batchItems < 1 {
		fmt.Fprintln(stderr, "fernet-bench: -rounds, -duration, -callers and -batch must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "fernet-bench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	started := time.Now()

	tmp, err := os.MkdirTemp("", "fernet-bench-")
	if err != nil {
		return err
	}
	if o.keepTempDir {
		logf("temporary directory: %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.repo == "" {
		if o.repo, err = moduleRoot(ctx); err != nil && (o.sidecar == "" || !o.skipEngine) {
			return fmt.Errorf("finding the repository (run from it, or give -repo): %w", err)
		}
	}
	// Both servers are built as the Dockerfile builds the sidecar: static,
	// without symbols. A cgo build maps libc too, about 1.5 MiB more RSS.
	if o.sidecar == "" {
		o.sidecar = filepath.Join(tmp, "fernet-sidecar")
		logf("building the sidecar ...")
		if err := goBuild(ctx, o.repo, o.sidecar, "./cmd/fernet-sidecar"); err != nil {
			return err
		}
	}
	echoBinary, err := os.Executable()
	if err != nil {
		return err
	}
	if o.repo != "" {
		echoBinary = filepath.Join(tmp, "fernet-bench")
		if err := goBuild(ctx, o.repo, echoBinary, "./cmd/fernet-bench"); err != nil {
			return err
		}
	}
	var engine *engineBench
	if !o.skipEngine {
		logf("compiling the engine benchmarks ...")
		if engine, err = newEngineBench(ctx, o.repo, tmp, o.benchtime); err != nil {
			return err
		}
	}
	w, err := newWorkload(o.batchItems)
	if err != nil {
		return err
	}
	var py *pythonBench
	if !o.skipPython {
		py, err = newPythonBench(ctx, o.python, o.repo, tmp)
		if err != nil {
			return err
		}
	}

	env := describeEnvironment(ctx, o, py)
	res := newResults()
	for round := 1; round <= o.rounds; round++ {
		logf("round %d of %d ...", round, o.rounds)
		if err := runRound(ctx, o, round, tmp, echoBinary, engine, py, w, res); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
	}
	env.elapsed = time.Since(started)
	printTable(stdout, env, o, res)
	return nil
}

// runRound measures everything once, with freshly started servers.
// Sidecar and echo alternate which goes first, so that drift in the
// machine's load does not always favour the same one.
func runRound(ctx context.Context, o options, round int, tmp, echoBinary string, engine *engineBench, py *pythonBench, w *workload, res *results) error {
	if engine != nil {
		if err := engine.run(ctx, res); err != nil {
			return err
		}
	}
	dir := filepath.Join(tmp, fmt.Sprintf("round%d", round))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	sidecar, err := startServer(ctx, "sidecar", dir, o.sidecar, []string{"--metrics-addr", "127.0.0.1:0"}, w.sidecarEnv())
	if err != nil {
		return err
	}
	defer sidecar.stop()
	echo, err := startServer(ctx, "echo", dir, echoBinary, []string{"echo"}, nil)
	if err != nil {
		return err
	}
	defer echo.stop()
	res.add("start/sidecar", sidecar.startToServing.Seconds()*1e3)
	res.add("start/echo", echo.startToServing.Seconds()*1e3)

	// Idle: started, answered one health check, then left alone.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	for _, s := range []*server{sidecar, echo} {
		rss, _, err := s.memory()
		if err != nil {
			return err
		}
		res.add("rss-idle/"+s.name, rss)
	}

	servers := []*server{sidecar, echo}
	if round%2 == 0 {
		servers = []*server{echo, sidecar}
	}
	// Target 2 (and 5's peak): unary Decrypt from many callers.
	got, err := alternate(ctx, servers, o.warmup, o.duration, func(s *server, warmup, dur time.Duration) (measured, error) {
		return unaryLoad(ctx, s, w, o.callers, warmup, dur)
	})
	if err != nil {
		return fmt.Errorf("%d callers: %w", o.callers, err)
	}
	for name, m := range got {
		res.add("unary32/"+name, m.perSecond())
		res.add("unary32-cpu/"+name, m.cpuPer())
	}
	for _, s := range []*server{sidecar, echo} {
		_, hwm, err := s.memory()
		if err != nil {
			return err
		}
		res.add("rss-peak/"+s.name, hwm)
	}
	// One caller: latency, for orientation.
	got, err = alternate(ctx, servers, o.warmup, o.duration, func(s *server, warmup, dur time.Duration) (measured, error) {
		return unaryLoad(ctx, s, w, 1, warmup, dur)
	})
	if err != nil {
		return fmt.Errorf("one caller: %w", err)
	}
	for name, m := range got {
		res.add("unary1/"+name, m.perSecond())
		res.add("p50/"+name, m.p50())
	}
	// Target 3: batches from one Go caller; and from two, for what
	// keeping a second batch in flight gives a bulk job.
	for _, callers := range []int{1, 2} {
		got, err = alternate(ctx, servers, o.warmup, o.duration, func(s *server, warmup, dur time.Duration) (measured, error) {
			return batchLoad(ctx, s, w, callers, warmup, dur)
		})
		if err != nil {
			return fmt.Errorf("batches, %d callers: %w", callers, err)
		}
		for name, m := range got {
			if callers == 2 {
				res.add("batch2/"+name, m.perSecond())
				continue
			}
			res.add("batch/"+name, m.perSecond())
			res.add("batch-cores/"+name, m.cores())
			res.add("batch-cpu/"+name, m.cpuPer())
		}
	}
	// Targets 3 and 4: Python in process, and the Python client.
	if py != nil {
		if err := py.run(ctx, w, sidecar, echo, o.duration, res); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// moduleRoot is the directory of the main module, as go list reports it.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, "cmd", "fernet-sidecar")); err != nil {
		return "", fmt.Errorf("%s is not the fernet-sidecar repository", dir)
	}
	return dir, nil
}

// goBuild builds pkg as the Dockerfile does.
func goBuild(ctx context.Context, repo, out, pkg string) error {
	return goCommand(ctx, repo, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
}

func goCommand(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
