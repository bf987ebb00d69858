package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results holds one value per round for every named figure, in round
// order, so that ratios are taken within a round.
type results struct {
	series map[string][]float64
	notes  map[string]string
}

func newResults() *results {
	return &results{series: map[string][]float64{}, notes: map[string]string{}}
}

func (r *results) add(name string, v float64) { r.series[name] = append(r.series[name], v) }

// note records why a group of figures is missing.
func (r *results) note(key, why string) { r.notes[key] = why }

// combine applies f to the figures a and b of each round.
func (r *results) combine(a, b string, f func(x, y float64) float64) []float64 {
	xs, ys := r.series[a], r.series[b]
	out := make([]float64, min(len(xs), len(ys)))
	for i := range out {
		out[i] = f(xs[i], ys[i])
	}
	return out
}

func (r *results) ratio(a, b string) []float64 {
	return r.combine(a, b, func(x, y float64) float64 { return x / y })
}

type summary struct {
	median, min, max float64
	ok               bool
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{median: median, min: s[0], max: s[len(s)-1], ok: true}
}

// format writes a figure with its unit: the median, then the min-max.
func (s summary) format(unit string) string {
	if !s.ok {
		return "n/a"
	}
	if s.min == s.max {
		return formatValue(s.median, unit)
	}
	return fmt.Sprintf("%s (%s–%s)", formatValue(s.median, unit), formatNumber(s.min, unit), formatNumber(s.max, unit))
}

func formatValue(v float64, unit string) string {
	n := formatNumber(v, unit)
	switch unit {
	case "", "x":
		return n
	case "/s":
		return n + "/s"
	default:
		return n + " " + unit
	}
}

func formatNumber(v float64, unit string) string {
	switch {
	case unit == "x":
		return fmt.Sprintf("%.2f", v)
	case unit == "/s" && v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case unit == "/s" && v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// bar is a target: a ratio (or, when absolute, a figure) at least or at
// most some value.
type bar struct {
	atMost   bool
	value    float64
	absolute string // unit of an absolute bar; "" for a ratio
}

func (b bar) String() string {
	op := "≥"
	if b.atMost {
		op = "≤"
	}
	if b.absolute != "" {
		return fmt.Sprintf("%s %g %s", op, b.value, b.absolute)
	}
	return fmt.Sprintf("%s %gx", op, b.value)
}

func (b bar) met(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if (b.atMost && v <= b.value) || (!b.atMost && v >= b.value) {
		return "yes"
	}
	return "**no**"
}

type environment struct {
	date, cpu, kernel, goVersion, python, commit string
	cores                                        int
	elapsed                                      time.Duration
}

func describeEnvironment(ctx context.Context, o options, py *pythonBench) environment {
	env := environment{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpu:       "unknown CPU",
		cores:     runtime.NumCPU(),
		goVersion: runtime.Version(),
		python:    "not run (-skip-python)",
		commit:    "unknown",
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				env.cpu = strings.TrimSpace(value)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env.kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if py != nil {
		v := py.versions
		or := func(key string) string {
			if v[key] == "" {
				return "missing"
			}
			return v[key]
		}
		env.python = fmt.Sprintf("Python %s (%s), cryptography %s, grpcio %s, protobuf %s",
			or("python"), py.python, or("cryptography"), or("grpcio"), or("protobuf"))
	}
	if o.repo != "" {
		if out, err := exec.CommandContext(ctx, "git", "-C", o.repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
			env.commit = strings.TrimSpace(string(out))
			if out, err := exec.CommandContext(ctx, "git", "-C", o.repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
				env.commit += " (with uncommitted changes)"
			}
		}
	}
	return env
}

// printTable writes the header and the one table. A row's figures are
// medians over the rounds with the min-max in parentheses; a ratio is
// taken within each round, then summarized the same way.
func printTable(w io.Writer, env environment, o options, r *results) {
	fmt.Fprintf(w, "fernet-bench, %s: %s, %d cores, %s; %s; %s; commit %s.\n\n",
		env.date, env.cpu, env.cores, env.kernel, env.goVersion, env.python, env.commit)
	fmt.Fprintf(w, "%d rounds; each load measured for %v per server after %v of warm-up, in %d turns alternating sidecar and echo; engine and floor %d times -benchtime %v, alternating; %d-item batches, %d-byte plaintexts; took %v.\n\n",
		o.rounds, o.duration, o.warmup, loadSlices, engineReps, o.benchtime, o.batchItems, plaintextSize, env.elapsed.Round(time.Second))
	fmt.Fprintln(w, "| # | measurement | fernet-sidecar | comparison (same run) | ratio | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	row := func(id, what, figure, comparison string, ratio []float64, b *bar) {
		s := summarize(ratio)
		ratioCell, target, met := "—", "—", "info"
		if s.ok {
			ratioCell = s.format("x")
		}
		if b != nil {
			target = b.String()
			met = "n/a"
			if s.ok {
				met = b.met(s.median)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", id, what, figure, comparison, ratioCell, target, met)
	}
	fig := func(name, unit string) string { return summarize(r.series[name]).format(unit) }
	sum := func(a, b string) []float64 { return r.combine(a, b, func(x, y float64) float64 { return x + y }) }
	withNote := func(cell, key string) string {
		if why, ok := r.notes[key]; ok && cell == "n/a" {
			return "n/a: " + why
		}
		return cell
	}

	// 1. The engine, against the floor.
	if !o.skipEngine {
		floorBoth := sum("engine/Floor/Encrypt/32B", "engine/Floor/Decrypt/32B")
		reencrypt := r.series["engine/Keyring/ReEncrypt/32B"]
		perRound := func(xs, ys []float64) []float64 {
			out := make([]float64, min(len(xs), len(ys)))
			for i := range out {
				out[i] = xs[i] / ys[i]
			}
			return out
		}
		row("1", "engine Encrypt, 32 B", fig("engine/Keyring/Encrypt/32B", "ns"), "floor encrypt "+fig("engine/Floor/Encrypt/32B", "ns"),
			r.ratio("engine/Keyring/Encrypt/32B", "engine/Floor/Encrypt/32B"), &bar{atMost: true, value: 1.3})
		row("1", "engine Decrypt, 32 B", fig("engine/Keyring/Decrypt/32B", "ns"), "floor decrypt "+fig("engine/Floor/Decrypt/32B", "ns"),
			r.ratio("engine/Keyring/Decrypt/32B", "engine/Floor/Decrypt/32B"), &bar{atMost: true, value: 1.3})
		row("1", "engine ReEncrypt, 32 B, old key to primary", fig("engine/Keyring/ReEncrypt/32B", "ns"),
			"floor decrypt + encrypt "+summarize(floorBoth).format("ns"), perRound(reencrypt, floorBoth), &bar{atMost: true, value: 1.3})
		maxAllocs := math.NaN()
		var allocs []string
		for _, op := range []string{"Encrypt", "Decrypt", "ReEncrypt"} {
			s := summarize(r.series["allocs/Keyring/"+op+"/32B"])
			allocs = append(allocs, fmt.Sprintf("%s %.0f", op, s.max))
			if math.IsNaN(maxAllocs) || s.max > maxAllocs {
				maxAllocs = s.max
			}
		}
		b := bar{atMost: true, value: 2, absolute: "allocs"}
		fmt.Fprintf(w, "| 1 | engine allocations per operation | %s | floor 0 | — | %s | %s |\n", strings.Join(allocs, ", "), b, b.met(maxAllocs))
	}

	// vsEcho is a row of the sidecar's figure of a load against the echo
	// server's.
	vsEcho := func(id, what, load, unit string, b *bar) {
		row(id, what, fig(load+"/sidecar", unit), "echo "+fig(load+"/echo", unit), r.ratio(load+"/sidecar", load+"/echo"), b)
	}

	// 2. Server overhead.
	vsEcho("2", fmt.Sprintf("unary Decrypt calls/s, %d callers, Unix socket, Go client", o.callers), "unary32", "/s", &bar{value: 0.9})
	vsEcho("2", "server CPU time per call under that load", "unary32-cpu", "µs", nil)

	// 3. Bulk from Go.
	row("3", fmt.Sprintf("ReEncryptBatch items/s, %d per call, one Go caller", o.batchItems), fig("batch/sidecar", "/s"),
		"Python MultiFernet.rotate in process "+fig("py/py_rotate_per_s", "/s"),
		r.ratio("batch/sidecar", "py/py_rotate_per_s"), &bar{value: 20})
	vsEcho("3", "the same, against the echo server's batch", "batch", "/s", &bar{value: 0.5})
	row("3", "the echo server's batch (no crypto at all) against Python in process", fig("batch/echo", "/s"),
		"Python MultiFernet.rotate in process "+fig("py/py_rotate_per_s", "/s"), r.ratio("batch/echo", "py/py_rotate_per_s"), nil)
	vsEcho("3", "ReEncryptBatch items/s with two Go callers, each with one batch in flight", "batch2", "/s", nil)
	row("3", "server CPU time per batch item; cores the server kept busy (one caller)", fig("batch-cpu/sidecar", "µs")+"; "+fig("batch-cores/sidecar", "")+" cores",
		"echo "+fig("batch-cpu/echo", "µs")+"; "+fig("batch-cores/echo", "")+" cores", r.ratio("batch-cpu/sidecar", "batch-cpu/echo"), nil)

	// 4. From Python.
	clientFig := func(name, unit string) string { return withNote(fig(name, unit), "client") }
	row("4", fmt.Sprintf("Python client rotate_many items/s, %d tokens", o.batchItems), clientFig("py/client_rotate_many_per_s", "/s"),
		"MultiFernet.rotate in process "+fig("py/py_rotate_per_s", "/s"), r.ratio("py/client_rotate_many_per_s", "py/py_rotate_per_s"), &bar{value: 10})
	// vsBareEcho is a row of a Python decrypt p50 against a bare grpcio
	// call to echo.
	vsBareEcho := func(what, name string, b *bar) {
		row("4", what, clientFig(name, "µs"), "bare grpcio call to echo "+fig("py/bare_echo_decrypt_p50_us", "µs"),
			r.ratio(name, "py/bare_echo_decrypt_p50_us"), b)
	}
	vsBareEcho("Python client decrypt latency, p50, one caller", "py/client_decrypt_p50_us", &bar{atMost: true, value: 1.1})
	row("4", "of which the client: its decrypt against a bare grpcio call to the sidecar, p50", clientFig("py/client_decrypt_p50_us", "µs"),
		"bare grpcio call to the sidecar "+fig("py/bare_sidecar_decrypt_p50_us", "µs"),
		r.ratio("py/client_decrypt_p50_us", "py/bare_sidecar_decrypt_p50_us"), nil)
	vsBareEcho("of which the server: a bare grpcio call to the sidecar, p50", "py/bare_sidecar_decrypt_p50_us", nil)
	vsBareEcho("a bare call to echo with a per-call 5 s timeout (the client puts its own in the service config), p50",
		"py/bare_echo_deadline_decrypt_p50_us", nil)
	vsBareEcho("the Python client with timeout=None (no deadline at all), decrypt p50", "py/client_nodeadline_decrypt_p50_us", nil)

	// 5. Footprint: absolute bars; the echo server for comparison.
	absolute := func(what, name, unit string, limit float64) {
		s := summarize(r.series[name+"/sidecar"])
		b := bar{atMost: true, value: limit, absolute: unit}
		met := "n/a"
		if s.ok {
			met = b.met(s.median)
		}
		ratio := summarize(r.ratio(name+"/sidecar", name+"/echo"))
		ratioCell := "—"
		if ratio.ok {
			ratioCell = ratio.format("x") + " of echo"
		}
		fmt.Fprintf(w, "| 5 | %s | %s | echo %s | %s | %s | %s |\n", what, s.format(unit), fig(name+"/echo", unit), ratioCell, b, met)
	}
	absolute("idle RSS", "rss-idle", "MiB", 15)
	absolute(fmt.Sprintf("peak RSS (VmHWM) after the %d-caller load", o.callers), "rss-peak", "MiB", 40)
	absolute("exec to first health check SERVING", "start", "ms", 100)

	// Orientation.
	row("", "one caller, Go client: Decrypt calls/s", fig("unary1/sidecar", "/s"), "echo "+fig("unary1/echo", "/s"),
		r.ratio("unary1/sidecar", "unary1/echo"), nil)
	row("", "one caller, Go client: Decrypt p50", fig("p50/sidecar", "µs"), "echo "+fig("p50/echo", "µs"),
		r.ratio("p50/sidecar", "p50/echo"), nil)
	row("", "Python cryptography in process, per call: encrypt / decrypt / rotate", "—",
		fmt.Sprintf("%s / %s / %s", fig("py/py_encrypt_us", "µs"), fig("py/py_decrypt_us", "µs"), fig("py/py_rotate_us", "µs")), nil, nil)
}
