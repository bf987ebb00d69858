package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
)

// TestMeasure measures the tables in docs/fernetctl.md: uninterrupted
// rotations of the fixture, nothing else writing, default flags. Timing is
// not a pass/fail matter, so it runs only with FERNETCTL_MEASURE=1.
//
//	FERNETCTL_ROWS=1000000          the table's size (default 100000)
//	FERNETCTL_BASELINE=/path/fernetctl  another build (an earlier commit) to run side by side
//	FERNETCTL_SHARDS=2,4            also n concurrent shards, on PostgreSQL
//	FERNETCTL_DIALECTS=postgres     only these databases (default all three)
//	FERNETCTL_RUNS=3                rounds, each build once a round (default 1)
func TestMeasure(t *testing.T) {
	if os.Getenv("FERNETCTL_MEASURE") != "1" {
		t.Skip("set FERNETCTL_MEASURE=1 to measure")
	}
	rows := int64(fixtureRows)
	if v := os.Getenv("FERNETCTL_ROWS"); v != "" {
		var err error
		if rows, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	builds := map[string]string{"this": binary(t, "fernetctl")}
	order := []string{"this"}
	if base := os.Getenv("FERNETCTL_BASELINE"); base != "" {
		builds["baseline"] = base
		order = []string{"baseline", "this"}
	}
	want := dialects
	if v := os.Getenv("FERNETCTL_DIALECTS"); v != "" {
		want = strings.Split(v, ",")
	}
	runs := 1
	if v := os.Getenv("FERNETCTL_RUNS"); v != "" {
		var err error
		if runs, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| database | build | shards | rows | took | rows/s | CPU s: fernetctl | sidecar | database |\n|---|---|---|---|---|---|---|---|---|\n")
	n := 0
	for _, dialect := range want {
		t.Run(dialect, func(t *testing.T) {
			fresh := databases(t, dialect)
			primary, old := mustKey(t), mustKey(t)
			env := []string{"DJANGO_ENCRYPTION_KEY=" + primary.Encode(), "OLD_DJANGO_ENCRYPTION_KEY=" + old.Encode()}
			sidecar := sidecartest.Start(t, binary(t, "fernet-sidecar"), env, "--addr", "127.0.0.1:0", "--metrics-addr", "")
			addr := sidecar.Addr
			measure := func(build string, shards int) {
				n++
				dsn, app := fresh(fmt.Sprintf("m%d", n))
				f := newFixture(t, dialect, app, primary, old, rows)
				dir := t.TempDir()
				server := serverPID(t, dialect, dsn)
				sidecarCPU, serverCPU := cpuTime(sidecar.Cmd.Process.Pid), cpuTime(server)
				started := time.Now()
				tools := make([]*tool, shards)
				for i := range tools {
					args := []string{"--dsn", dsn, "--table", "otp_totpdevice", "--column", "key", "--sidecar", addr,
						"--progress-interval", "0", "--encrypt-plaintext"}
					if shards > 1 {
						args = append(args, "--shard", fmt.Sprintf("%d/%d", i, shards))
					}
					tools[i] = startToolBinary(t, builds[build], dir, args...)
				}
				for _, tl := range tools {
					// 3: the fixture's undecryptable rows, in some shards.
					if code := tl.wait(t, 30*time.Minute); code != exitRemaining && (shards == 1 || code != exitOK) {
						t.Fatalf("%s: exit %d\n%s\n%s", build, code, &tl.stdout, &tl.stderr)
					}
				}
				took := time.Since(started)
				var toolCPU time.Duration
				for _, tl := range tools {
					toolCPU += tl.cmd.ProcessState.UserTime() + tl.cmd.ProcessState.SystemTime()
				}
				sidecarCPU, serverCPU = cpuTime(sidecar.Cmd.Process.Pid)-sidecarCPU, cpuTime(server)-serverCPU
				fmt.Fprintf(&table, "| %s | %s | %d | %d | %.1f s | %.0f | %.1f | %.1f | %.1f |\n", dialect, build, shards, rows, took.Seconds(), float64(rows)/took.Seconds(),
					toolCPU.Seconds(), sidecarCPU.Seconds(), serverCPU.Seconds())
				f.verify()
			}
			// Rounds, so that the load of a shared machine falls on every
			// build alike.
			for range runs {
				for _, build := range order {
					if build == "baseline" && dialect == "mysql" {
						continue // not supported before
					}
					measure(build, 1)
				}
				if dialect == "postgres" && os.Getenv("FERNETCTL_SHARDS") != "" {
					for _, s := range strings.Split(os.Getenv("FERNETCTL_SHARDS"), ",") {
						shards, err := strconv.Atoi(s)
						if err != nil {
							t.Fatal(err)
						}
						measure("this", shards)
					}
				}
			}
		})
	}
	t.Logf("load average %s\n%s", loadAverage(), table.String())
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// serverPID is the database server's process id (0 for SQLite, which
// runs in fernetctl): PostgreSQL's postmaster, whose backends are its
// children, or mariadbd.
func serverPID(t *testing.T, dialect, dsn string) int {
	t.Helper()
	var pidFile string
	switch dialect {
	case "postgres":
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		pidFile = filepath.Join(u.Query().Get("host"), "data", "postmaster.pid")
	case "mysql":
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		pidFile = filepath.Join(filepath.Dir(u.Query().Get("unix_socket")), "mysqld.pid")
	default:
		return 0
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// cpuTime is the CPU time (user and system) that process pid and its
// children have used, from /proc; 0 for pid 0.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	var ticks int64
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The fields after the command name, which may hold spaces:
		// state ppid ... utime (12th) stime (13th).
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		self, _ := strconv.Atoi(filepath.Base(d))
		if parent, _ := strconv.Atoi(fields[1]); self != pid && parent != pid {
			continue
		}
		// utime and stime; for pid itself also cutime and cstime, the
		// children it has reaped (PostgreSQL's ended backends).
		last := 12
		if self == pid {
			last = 14
		}
		for _, f := range fields[11 : last+1] {
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}
