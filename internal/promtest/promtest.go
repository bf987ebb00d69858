// Package promtest runs Debian's Prometheus servers (prometheus,
// prometheus-pushgateway) on loopback ports of their own, for the tests
// that read what the sidecar and the rotation commands report.
package promtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// Daemon is a server that the test runs on a loopback port, in a
// directory of its own, until the test ends.
type Daemon struct {
	// URL is where it serves: http://127.0.0.1:port.
	URL string
	// Log is what it has written to stderr.
	Log *sidecartest.Lines

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartDaemon runs the command line that argv makes for a listen address
// (the attempt-th, from 1), in dir, and waits until its /-/ready answers.
func StartDaemon(t testing.TB, name, dir string, argv func(addr string, attempt int) []string) *Daemon {
	t.Helper()
	// The port is found free and then handed over, so another process may
	// take it in between: try a few.
	for attempt := 1; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		args := argv(addr, attempt)
		d := &Daemon{URL: "http://" + addr, Log: &sidecartest.Lines{}, exited: make(chan struct{})}
		d.cmd = exec.Command(args[0], args[1:]...)
		d.cmd.Dir = dir
		pipe, err := d.cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 4096)
			var pending string
			for {
				n, err := pipe.Read(buf)
				pending += string(buf[:n])
				for {
					line, rest, ok := strings.Cut(pending, "\n")
					if !ok {
						break
					}
					d.Log.Add(line)
					pending = rest
				}
				if err != nil {
					break
				}
			}
			d.cmd.Wait()
			close(d.exited)
		}()
		t.Cleanup(d.Stop)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-d.exited:
				deadline = time.Time{}
				continue
			default:
			}
			if code, _ := Get(d.URL + "/-/ready"); code == http.StatusOK {
				return d
			}
			time.Sleep(200 * time.Millisecond)
		}
		d.Stop()
		if attempt == 3 {
			t.Fatalf("%s did not become ready on %s:\n%s", name, addr, d.Log)
		}
		t.Logf("%s on %s did not start, trying another port:\n%s", name, addr, d.Log)
	}
}

// Stop ends it with SIGTERM (SIGKILL after 15 s), if it still runs.
func (d *Daemon) Stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// StartPushgateway runs Debian's prometheus-pushgateway on a loopback
// port, keeping what is pushed in memory only: Debian's build otherwise
// persists it to /var/lib/prometheus/pushgateway.data, shared by every run.
func StartPushgateway(t testing.TB) *Daemon {
	t.Helper()
	bin := testenv.LookPath(t, "prometheus-pushgateway")
	return StartDaemon(t, "prometheus-pushgateway", t.TempDir(), func(addr string, _ int) []string {
		return []string{bin, "--web.listen-address=" + addr, "--persistence.file=", "--log.level=info"}
	})
}

// FreePort returns a loopback TCP port that was free a moment ago, for
// programs that cannot report the port they bound.
func FreePort(t testing.TB) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

// Get fetches url within 5 s: its status code and body, or 0 and the
// error.
func Get(url string) (int, string) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(body)
}
