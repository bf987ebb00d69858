package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// server is a started process serving gRPC on a Unix socket, with one
// client connection to it that every load shares.
type server struct {
	name   string
	socket string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
	conn   *grpc.ClientConn
	client fernetv1.FernetServiceClient
	// startToServing runs from exec to the first health check that
	// answered SERVING.
	startToServing time.Duration
}

// startServer runs bin with args plus --addr unix://<dir>/<name>.sock and
// waits for it to report SERVING.
func startServer(ctx context.Context, name, dir, bin string, args, env []string) (*server, error) {
	s := &server{
		name:   name,
		socket: filepath.Join(dir, name+".sock"),
		log:    filepath.Join(dir, name+".log"),
		exited: make(chan struct{}),
	}
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	s.cmd = exec.Command(bin, append(args, "--addr", "unix://"+s.socket)...)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	started := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitServing(ctx, started); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w%s", name, err, s.logTail())
	}
	return s, nil
}

// waitServing polls the socket until it accepts, then the health service
// until it answers SERVING. Polling the socket first keeps gRPC's
// reconnect backoff (a second after a refused dial) out of the figure.
func (s *server) waitServing(ctx context.Context, started time.Time) error {
	deadline := started.Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", s.socket)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-s.exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("not listening after 10 s")
		}
		time.Sleep(100 * time.Microsecond)
	}
	conn, err := grpc.NewClient("unix://"+s.socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	s.conn, s.client = conn, fernetv1.NewFernetServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	for {
		callCtx, cancel := context.WithDeadline(ctx, deadline)
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			s.startToServing = time.Since(started)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not SERVING after 10 s: %v", err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (s *server) stop() {
	if s.conn != nil {
		s.conn.Close()
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) logTail() string {
	data, _ := os.ReadFile(s.log)
	data = bytes.TrimSpace(data)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	if len(data) == 0 {
		return ""
	}
	return "\n" + string(data)
}

// memory is the process's resident set now and its peak so far, in MiB,
// from /proc/<pid>/status (VmRSS, VmHWM).
func (s *server) memory() (rss, peak float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb / 1024
		} else {
			peak = kb / 1024
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, errors.New("no VmRSS or VmHWM in /proc status")
	}
	return rss, peak, nil
}

// clockTicks is USER_HZ, which Linux fixes at 100 on every architecture
// Go runs on.
const clockTicks = 100

// cpuTime is the CPU time the process has used, user and system, from
// /proc/<pid>/stat.
func (s *server) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	rest := string(data[bytes.LastIndexByte(data, ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
