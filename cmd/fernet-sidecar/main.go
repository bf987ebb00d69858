// Command fernet-sidecar serves Fernet encryption over gRPC to the app
// beside it, with the app's own keys and Python-compatible tokens.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/keysource"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// The garbage collector's settings, unless GOGC and GOMEMLIMIT set them.
// The live heap is about 2 MiB, so at Go's default GOGC=100 the collector
// ran after every 2 MiB allocated: every five 1000-item batches. On a small
// VM each collection costs far more than its share (stopping the world,
// waking idle cores), and GOGC=200 made a batch rotation about 15% faster
// for about 4 MiB more RSS. But a large live heap (four 4 MiB batches at
// once) would then grow to three times its size, past a 128 MiB container
// limit; the 64 MiB soft limit keeps that burst at about 71 MiB, less than
// it took at GOGC=100 (docs/deployment.md#resources).
const (
	defaultGCPercent   = 200
	defaultMemoryLimit = 64 << 20
)

func tuneGC(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	if _, set := lookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// version is set at build time with -ldflags "-X main.version=..."; when it
// is not, the module version from the build info is used.
var version string

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "genkey" {
		return genkey(stdout, stderr)
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], lookupEnv, stderr)
	}
	cfg, err := parseConfig(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "fernet-sidecar:", err)
		return 2
	}
	if cfg.version {
		fmt.Fprintln(stdout, buildVersion())
		return 0
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if err := serve(cfg, lookupEnv, logger); err != nil {
		logger.Error("fernet-sidecar failed", "error", err.Error())
		return 1
	}
	return 0
}

// genkey prints a new key in the form Python's Fernet.generate_key() makes.
func genkey(stdout, stderr io.Writer) int {
	key, err := fernet.GenerateKey()
	if err != nil {
		fmt.Fprintln(stderr, "fernet-sidecar:", err)
		return 1
	}
	fmt.Fprintln(stdout, key.Encode())
	return 0
}

func serve(cfg config, lookupEnv func(string) (string, bool), logger *slog.Logger) error {
	// Catch signals first: a SIGTERM or SIGHUP that arrives while starting
	// must not kill the process.
	signals, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()
	hangups := make(chan os.Signal, 1) // SIGHUP reloads the keys
	signal.Notify(hangups, syscall.SIGHUP)
	defer signal.Stop(hangups)
	tuneGC(lookupEnv)
	if err := forbidCoreDumps(); err != nil {
		return err
	}
	source := keysource.Source{
		PrimaryVar:            cfg.keyVar,
		DecryptOnlyVar:        cfg.oldKeysVar,
		ListVar:               cfg.keysVar,
		PrimaryDerivation:     cfg.keyDerivation,
		DecryptOnlyDerivation: cfg.oldKeysDerivation,
		SaltVar:               cfg.saltVar,
		LookupEnv:             lookupEnv,
	}
	if cfg.dev {
		source.DevKeyFile = cfg.devKeyFile
	}
	reloader, loaded, err := keysource.NewReloader(source, logger)
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	if loaded.DevKey {
		logger.Warn("DEVELOPMENT KEY IN USE: NOT FOR PRODUCTION. Data encrypted now is readable by anyone with this file.",
			"dev_key_file", cfg.devKeyFile, "created", loaded.DevKeyCreated)
	}
	if len(loaded.FromEnvironment) > 0 {
		logger.Warn("a key was given in an environment variable: any process of this user can read it in /proc/PID/environ while the sidecar runs. Give it as a file instead (the _FILE form)",
			"variables", loaded.FromEnvironment)
	}

	var tlsConfig *tls.Config
	if cfg.tlsCertFile != "" {
		if tlsConfig, err = server.LoadTLS(logger, cfg.tlsCertFile, cfg.tlsKeyFile, cfg.tlsClientCAFile, cfg.tlsClientAllow...); err != nil {
			return err
		}
	}
	grpcListener, err := server.Listen(cfg.addr, cfg.socketGroup)
	if err != nil {
		return err
	}
	var healthListener net.Listener
	if cfg.healthAddr != "" {
		if healthListener, err = server.Listen(cfg.healthAddr, ""); err != nil {
			grpcListener.Close()
			return err
		}
	}
	srv := server.New(server.Config{
		TLS:             tlsConfig,
		AuditCalls:      cfg.auditCalls,
		AllowedMethods:  cfg.allowMethods,
		Keys:            reloader,
		Limits:          cfg.limits,
		MaxMessageBytes: cfg.maxMessageBytes,
		MaxConnections:  cfg.maxConnections,
		PublicKeyID:     reloader.PublicKeyID,
		Version:         buildVersion(),
		Logger:          logger,
	})
	serveErrs := make(chan error, 2)
	metricsServer, metricsAddr, err := startMetrics(cfg.metricsAddr, srv.HTTPHandler(), serveErrs)
	if err != nil {
		grpcListener.Close()
		return err
	}
	go func() { serveErrs <- srv.Serve(grpcListener) }()
	if healthListener != nil {
		go func() { serveErrs <- srv.ServeHealth(healthListener) }()
	}

	reloader.OnReload = srv.ObserveKeyReload
	watching, stopWatching := context.WithCancel(context.Background())
	defer stopWatching()
	if cfg.watchKeys {
		if err := reloader.Watch(watching); err != nil {
			return err
		}
	}
	healthAddr := ""
	if healthListener != nil {
		healthAddr = listenerAddr(healthListener)
	}
	logger.Info("serving", "addr", listenerAddr(grpcListener), "health_addr", healthAddr,
		"metrics_addr", metricsAddr, "version", buildVersion())
	for running := true; running; {
		select {
		case err := <-serveErrs:
			return err
		case <-hangups:
			_ = reloader.Reload() // reported and logged by Reload
		case <-signals.Done():
			running = false
		}
	}
	logger.Info("shutting down", "timeout", cfg.shutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	srv.Shutdown(ctx)
	if metricsServer != nil {
		if err := metricsServer.Shutdown(ctx); err != nil {
			return fmt.Errorf("stop metrics server: %w", err)
		}
	}
	logger.Info("stopped")
	return nil
}

// startMetrics serves handler on addr unless addr is empty. It listens
// before returning, so a bad address stops the start-up.
func startMetrics(addr string, handler http.Handler, errs chan<- error) (*http.Server, string, error) {
	if addr == "" {
		return nil, "", nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	srv := server.NewHTTPServer(handler)
	go func() {
		if err := srv.Serve(server.LimitHTTPListener(lis)); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serve metrics: %w", err)
		}
	}()
	return srv, lis.Addr().String(), nil
}

func listenerAddr(lis net.Listener) string {
	if lis.Addr().Network() == "unix" {
		return "unix://" + lis.Addr().String()
	}
	return lis.Addr().String()
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.Main.Version
	}
	return "unknown"
}
