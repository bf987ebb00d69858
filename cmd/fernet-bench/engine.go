package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// engineBench runs the fernet package's own benchmarks (bench_test.go):
// the engine (BenchmarkKeyring) and the floor it is measured against
// (BenchmarkFloor), compiled once into a test binary and run once per
// round, one right after the other.
type engineBench struct {
	binary, dir string
	benchtime   time.Duration
}

// enginePattern selects the 32-byte cases: Keyring's Encrypt, Decrypt and
// ReEncrypt, and Floor's Encrypt, Decrypt and HMAC.
const enginePattern = `^Benchmark(Keyring|Floor)$/^(Encrypt|Decrypt|ReEncrypt|HMAC)$/^32B$`

func newEngineBench(ctx context.Context, repo, tmp string, benchtime time.Duration) (*engineBench, error) {
	e := &engineBench{binary: filepath.Join(tmp, "fernet.test"), dir: filepath.Join(repo, "fernet"), benchtime: benchtime}
	if err := goCommand(ctx, repo, nil, "test", "-c", "-o", e.binary, "./fernet/"); err != nil {
		return nil, err
	}
	return e, nil
}

// benchLine is one result line: name, iterations, ns/op, B/op, allocs/op.
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+[\d.]+ B/op\s+([\d.]+) allocs/op`)

func (e *engineBench) run(ctx context.Context, res *results) error {
	cmd := exec.CommandContext(ctx, e.binary, "-test.run", "^$", "-test.bench", enginePattern,
		"-test.benchmem", "-test.benchtime", e.benchtime.String())
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("engine benchmarks: %w\n%s", err, out)
	}
	found := 0
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		allocs, _ := strconv.ParseFloat(m[3], 64)
		res.add("engine/"+m[1], ns)
		res.add("allocs/"+m[1], allocs)
		found++
	}
	if found != 6 {
		return fmt.Errorf("engine benchmarks: %d results, want 6:\n%s", found, out)
	}
	return nil
}
