package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// transportBufferBytes is the size of a connection's read and write buffers.
const transportBufferBytes = 256 << 10

// Config is what a Server is built from.
type Config struct {
	Keys   KeyringSource
	Limits Limits
	// MaxMessageBytes bounds one received gRPC message, batches included.
	MaxMessageBytes int
	// TLS, when set, serves the API over TLS (with client certificates
	// checked if it says so); nil serves plaintext.
	TLS *tls.Config
	// AuditCalls logs one line per call: peer, method, key ids, outcome.
	AuditCalls bool
	Version    string
	Logger     *slog.Logger
	// MaxConnections caps the API's connections; 0 means
	// DefaultMaxConnections.
	MaxConnections int
	// Admission bounds the work in flight; the zero value sizes it from
	// the Go memory limit (AdmissionFor).
	Admission Admission
	// PublicKeyID, when set, is what metrics and audit lines show for a
	// key id instead of the id (see keysource.Current.PublicKeyID).
	PublicKeyID func(id string) string

	// AllowedMethods are the FernetService methods served (see
	// ParseMethods); nil serves all of them.
	AllowedMethods []string
}

// Server is the process's gRPC server with health and reflection, and the
// HTTP handler for /metrics, /healthz and /readyz.
type Server struct {
	metrics *Metrics
	grpc    *grpc.Server
	// healthOnly serves just the health service, for probes that must
	// reach the pod from outside while the API stays on loopback.
	healthOnly *grpc.Server
	health     *health.Server
	registry   *prometheus.Registry
	ready      atomic.Bool
	logger     *slog.Logger
	maxConns   int
}

// New builds a Server; Serve starts it.
func New(cfg Config) *Server {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	grpcMetrics := newGRPCMetrics(registry)
	metrics := NewMetrics(registry)
	if cfg.PublicKeyID != nil {
		metrics.publicKeyID = cfg.PublicKeyID
	}

	s := &Server{metrics: metrics, health: health.NewServer(), registry: registry, logger: cfg.Logger, maxConns: cfg.MaxConnections}
	if s.maxConns <= 0 {
		s.maxConns = DefaultMaxConnections
	}
	if cfg.Admission == (Admission{}) {
		cfg.Admission = AdmissionFor(debug.SetMemoryLimit(-1), cfg.MaxMessageBytes, cfg.Limits)
	}
	admission := newAdmission(cfg.Admission, cfg.MaxMessageBytes, registry)
	allowed := cfg.AllowedMethods
	if allowed == nil {
		allowed = FernetMethods()
	}
	interceptors := []grpc.UnaryServerInterceptor{grpcMetrics.unaryInterceptor}
	if cfg.AuditCalls {
		interceptors = append(interceptors, auditCalls(cfg.Logger, metrics.publicKeyID))
	}
	interceptors = append(interceptors, recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(s.recoverPanic)))
	options := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(interceptors...),
		// A 1000-item batch is about 120 KiB in and 170 KiB out. At gRPC's
		// default 32 KiB buffers that is about ten read and write calls,
		// each waking the other side; one caller's batches ran about 10%
		// faster with these. gRPC returns the write buffer to a pool after
		// each flush, so an idle connection holds only the read buffer.
		grpc.ReadBufferSize(transportBufferBytes),
		grpc.WriteBufferSize(transportBufferBytes),
	}
	options = append(options, transportOptions(apiStreamsPerConnection, keepalive.ServerParameters{MaxConnectionIdle: apiIdleTimeout})...)
	if cfg.TLS != nil {
		options = append(options, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(options...)
	service := NewService(cfg.Keys, cfg.Limits, metrics, cfg.Version)
	service.allowedMethods, service.maxMessageBytes = allowed, cfg.MaxMessageBytes
	s.grpc.RegisterService(denyMethods(admission.admit(&fernetv1.FernetService_ServiceDesc), allowed, metrics, cfg.Logger), service)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.healthOnly = grpc.NewServer(healthServerOptions()...)
	healthpb.RegisterHealthServer(s.healthOnly, checkOnly{s.health})
	reflection.Register(s.grpc)
	grpcMetrics.resolve(s.grpc)
	return s
}

// checkOnly is the health service without Watch, for the health-only
// server: probes only call Check, and an open Watch would keep its
// connection, one of few, from ever being idle.
type checkOnly struct{ *health.Server }

func (checkOnly) Watch(*healthpb.HealthCheckRequest, healthpb.Health_WatchServer) error {
	return status.Error(codes.Unimplemented, "Watch is not served on the health port; use Check")
}

// ObserveKeyReload records a load of the keys, the first one included (see
// keysource.NewReloader).
func (s *Server) ObserveKeyReload(keyring *fernet.Keyring, err error) {
	s.metrics.ObserveKeyReload(keyring, err)
}

// recoverPanic turns a panic in a handler into INTERNAL. Only the stack is
// logged: a panic value could hold request data.
func (s *Server) recoverPanic(ctx context.Context, _ any) error {
	method, _ := grpc.Method(ctx)
	s.logger.Error("panic in handler", "method", method, "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

// Serve reports SERVING and serves gRPC on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(fernetv1.FernetService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.ready.Store(true)
	if err := s.grpc.Serve(netutil.LimitListener(lis, s.maxConns)); err != nil {
		return fmt.Errorf("serve gRPC: %w", err)
	}
	return nil
}

// ServeHealth serves only the health service on lis, until Shutdown.
func (s *Server) ServeHealth(lis net.Listener) error {
	if err := s.healthOnly.Serve(netutil.LimitListener(lis, healthMaxConnections)); err != nil {
		return fmt.Errorf("serve health: %w", err)
	}
	return nil
}

// Shutdown reports NOT_SERVING, stops accepting calls and waits for the
// calls in flight; when ctx ends first, it cuts them off.
func (s *Server) Shutdown(ctx context.Context) {
	s.ready.Store(false)
	s.health.Shutdown()
	defer s.healthOnly.Stop()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.logger.Warn("shutdown timeout reached; cutting off calls in flight")
		s.grpc.Stop()
		<-stopped
	}
}

// HTTPHandler serves /metrics, /healthz (the process is up) and /readyz
// (it accepts calls).
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
