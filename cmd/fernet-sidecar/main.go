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
	"sync"
	"syscall"
	"time"

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

func serve(cfg config, lookupEnv func(string) (string, bool), logger *slog.Logger) (err error) {
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
	source := keySource(cfg, lookupEnv)
	loaded, err := source.Load()
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	current := keysource.NewCurrent(loaded)
	srv, err := newServer(cfg, current, logger)
	if err != nil {
		return err
	}
	reloader := keysource.NewReloader(source, current, logger, srv.ObserveKeyReload)
	warnOfUnsafeKeys(cfg, loaded, logger)
	if cfg.watchKeys {
		stopWatching, err := reloader.Watch()
		if err != nil {
			return err
		}
		defer stopWatching()
	}
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	running := startServers(srv, lis)
	defer func() {
		if stopErr := running.stop(cfg.shutdownTimeout); err == nil {
			err = stopErr
		}
		if err == nil {
			logger.Info("stopped")
		}
	}()
	logger.Info("serving", "addr", listenerAddr(lis.api), "health_addr", listenerAddr(lis.health),
		"metrics_addr", listenerAddr(lis.metrics), "version", buildVersion())
	for {
		select {
		case err := <-running.failed:
			return err
		case <-hangups:
			_ = reloader.Reload() // reported and logged by Reload
		case <-signals.Done():
			logger.Info("shutting down", "timeout", cfg.shutdownTimeout.String())
			return nil
		}
	}
}

// keySource is where the flags say the keys are.
func keySource(cfg config, lookupEnv func(string) (string, bool)) keysource.Source {
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
	return source
}

// warnOfUnsafeKeys warns of the ways the keys were given that are not for
// production.
func warnOfUnsafeKeys(cfg config, loaded keysource.Loaded, logger *slog.Logger) {
	if loaded.DevKey {
		logger.Warn("DEVELOPMENT KEY IN USE: NOT FOR PRODUCTION. Data encrypted now is readable by anyone with this file.",
			"dev_key_file", cfg.devKeyFile, "created", loaded.DevKeyCreated)
	}
	if len(loaded.FromEnvironment) > 0 {
		logger.Warn("a key was given in an environment variable: any process of this user can read it in /proc/PID/environ while the sidecar runs. Give it as a file instead (the _FILE form)",
			"variables", loaded.FromEnvironment)
	}
}

// newServer builds the server; it opens nothing yet.
func newServer(cfg config, keys *keysource.Current, logger *slog.Logger) (*server.Server, error) {
	var tlsConfig *tls.Config
	if cfg.tlsCertFile != "" {
		var err error
		if tlsConfig, err = server.LoadTLS(logger, cfg.tlsCertFile, cfg.tlsKeyFile, cfg.tlsClientCAFile, cfg.tlsClientAllow...); err != nil {
			return nil, err
		}
	}
	return server.New(server.Config{
		TLS:             tlsConfig,
		AuditCalls:      cfg.auditCalls,
		AllowedMethods:  cfg.allowMethods,
		Keys:            keys,
		Limits:          cfg.limits,
		MaxMessageBytes: cfg.maxMessageBytes,
		MaxConnections:  cfg.maxConnections,
		PublicKeyID:     keys.PublicKeyID,
		Version:         buildVersion(),
		Logger:          logger,
	}), nil
}

// listeners are the process's open ports; health and metrics are nil when
// turned off.
type listeners struct {
	api, health, metrics net.Listener
}

// listen opens every port before anything is served, so that a port taken
// stops the start-up with nothing running. On an error it closes the ports
// it opened.
func listen(cfg config) (lis listeners, err error) {
	defer func() {
		if err != nil {
			lis.close()
		}
	}()
	if lis.api, err = server.Listen(cfg.addr, cfg.socketGroup); err != nil {
		return lis, err
	}
	if cfg.healthAddr != "" {
		if lis.health, err = server.Listen(cfg.healthAddr, ""); err != nil {
			return lis, err
		}
	}
	if cfg.metricsAddr != "" {
		if lis.metrics, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			return lis, fmt.Errorf("listen for metrics on %s: %w", cfg.metricsAddr, err)
		}
	}
	return lis, nil
}

func (lis listeners) close() {
	for _, l := range []net.Listener{lis.api, lis.health, lis.metrics} {
		if l != nil {
			l.Close()
		}
	}
}

// servers are the servers running on the listeners, which they own:
// stopping a server closes its listener.
type servers struct {
	srv     *server.Server
	metrics *http.Server // nil when --metrics-addr is ""
	// failed gets the error of each server that returns; one that
	// returns before stop is a failure of the process.
	failed  chan error
	running sync.WaitGroup
}

func startServers(srv *server.Server, lis listeners) *servers {
	s := &servers{srv: srv, failed: make(chan error, 3)}
	s.start(func() error { return srv.Serve(lis.api) })
	if lis.health != nil {
		s.start(func() error { return srv.ServeHealth(lis.health) })
	}
	if lis.metrics != nil {
		s.metrics = server.NewHTTPServer(srv.HTTPHandler())
		s.start(func() error {
			if err := s.metrics.Serve(server.LimitHTTPListener(lis.metrics)); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
	}
	return s
}

func (s *servers) start(serve func() error) {
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		if err := serve(); err != nil {
			s.failed <- err
		}
	}()
}

// stop lets the calls in flight finish, for up to timeout, and returns
// once every server has.
func (s *servers) stop(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	defer s.running.Wait()
	s.srv.Shutdown(ctx)
	if s.metrics != nil {
		if err := s.metrics.Shutdown(ctx); err != nil {
			return fmt.Errorf("stop metrics server: %w", err)
		}
	}
	return nil
}

// listenerAddr is where lis listens, "" for none.
func listenerAddr(lis net.Listener) string {
	if lis == nil {
		return ""
	}
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
