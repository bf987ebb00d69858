package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
// ReEncrypt, and Floor's Encrypt and Decrypt.
var enginePatterns = []struct {
	pattern string
	cases   int // the benchmarks it selects
}{
	{`^BenchmarkKeyring$/^(Encrypt|Decrypt|ReEncrypt)$/^32B$`, 3},
	{`^BenchmarkFloor$/^(Encrypt|Decrypt)$/^32B$`, 2},
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

// engineReps is how many times a round measures the engine and the floor,
// alternating which goes first; the round's figure is the median.
const engineReps = 3

// run measures the engine and the floor engineReps times, each time one
// right after the other, alternating the order.
func (e *engineBench) run(ctx context.Context, res *results) error {
	values := map[string][]float64{}
	for rep := range engineReps {
		patterns := enginePatterns
		if rep%2 == 1 {
			patterns = slices.Clone(patterns)
			slices.Reverse(patterns)
		}
		for _, selected := range patterns {
			cmd := exec.CommandContext(ctx, e.binary, "-test.run", "^$", "-test.bench", selected.pattern,
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
				values["engine/"+m[1]] = append(values["engine/"+m[1]], ns)
				values["allocs/"+m[1]] = append(values["allocs/"+m[1]], allocs)
				found++
			}
			if found != selected.cases {
				return fmt.Errorf("engine benchmarks %s: %d results, want %d:\n%s", selected.pattern, found, selected.cases, out)
			}
		}
	}
	for name, vs := range values {
		res.add(name, summarize(vs).median)
	}
	return nil
}
