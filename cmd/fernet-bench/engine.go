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
// round, one right after the other, in the order the round says.
type engineBench struct {
	binary, dir string
	benchtime   time.Duration
}

// enginePatterns select the 32-byte cases: Keyring's Encrypt, Decrypt and
// ReEncrypt, and Floor's Encrypt, Decrypt and HMAC.
var enginePatterns = []string{
	`^BenchmarkKeyring$/^(Encrypt|Decrypt|ReEncrypt)$/^32B$`,
	`^BenchmarkFloor$/^(Encrypt|Decrypt|HMAC)$/^32B$`,
}

func newEngineBench(ctx context.Context, repo, tmp string, benchtime time.Duration) (*engineBench, error) {
	e := &engineBench{binary: filepath.Join(tmp, "fernet.test"), dir: filepath.Join(repo, "fernet"), benchtime: benchtime}
	if err := goCommand(ctx, repo, nil, "test", "-c", "-o", e.binary, "./fernet/"); err != nil {
		return nil, err
	}
	return e, nil
}

// benchLine is one result line: name, iterations, ns/op, B/op, allocs/op.
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+[\d.]+ B/op\s+([\d.]+) allocs/op`)

// run measures the engine and the floor; floorFirst swaps their order, so
// that rounds alternate it.
func (e *engineBench) run(ctx context.Context, floorFirst bool, res *results) error {
	patterns := enginePatterns
	if floorFirst {
		patterns = []string{patterns[1], patterns[0]}
	}
	var out []byte
	for _, pattern := range patterns {
		cmd := exec.CommandContext(ctx, e.binary, "-test.run", "^$", "-test.bench", pattern,
			"-test.benchmem", "-test.benchtime", e.benchtime.String())
		cmd.Dir = e.dir
		got, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("engine benchmarks: %w\n%s", err, got)
		}
		out = append(out, got...)
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
