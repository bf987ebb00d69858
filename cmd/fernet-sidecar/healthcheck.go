package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthcheck asks a running sidecar's health service whether it serves,
// and exits 0 if it does. It is the container's health check: the image
// has no shell and no grpcurl.
func healthcheck(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	fs := flag.NewFlagSet("fernet-sidecar healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", healthcheckAddr(lookupEnv), "the sidecar's --health-addr or plaintext --addr")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	target := *addr
	if strings.HasPrefix(target, ":") {
		target = "127.0.0.1" + target
	}
	if path, isUnix := strings.CutPrefix(target, unixScheme); isUnix {
		target = "unix:" + path
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		fmt.Fprintln(stderr, "healthcheck:", resp.GetStatus())
		return 1
	}
	return 0
}

const unixScheme = "unix://"

// healthcheckAddr is where the sidecar in the same container serves
// health: its health-only address if it has one, else its API address.
func healthcheckAddr(lookupEnv func(string) (string, bool)) string {
	for _, name := range []string{envPrefix + "HEALTH_ADDR", envPrefix + "ADDR"} {
		if addr, ok := lookupEnv(name); ok && addr != "" {
			return addr
		}
	}
	return "127.0.0.1:50051"
}
