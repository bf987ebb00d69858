package server

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// The bounds of every listener, so that no one who can connect can make the
// process hold unbounded memory with connections, streams or headers. The
// figures are in docs/reliability.md.
const (
	// maxHeaderListBytes bounds the decoded metadata of one call (gRPC's
	// default is 16 MiB, which a few KB of HPACK references can fill).
	// Our clients send under 1 KiB.
	maxHeaderListBytes = 16 << 10
	// apiStreamsPerConnection bounds the calls at once on one API
	// connection; past it, new streams are refused at once and the client
	// queues them. Admission bounds the calls across connections.
	apiStreamsPerConnection = 64
	// DefaultMaxConnections bounds the API's connections; past it, new
	// ones wait in the kernel's backlog until one closes.
	DefaultMaxConnections = 64
	// handshakeTimeout closes a connection that has not finished its TLS
	// handshake and HTTP/2 preface in time.
	handshakeTimeout = 10 * time.Second
	// apiIdleTimeout closes an API connection with no call for this long;
	// gRPC clients reconnect on their next call.
	apiIdleTimeout = 5 * time.Minute
	// streamWindowBytes is how much of a call's message the client may
	// send before the server starts reading it: a batch waiting for
	// admission holds no more. Setting it also turns off gRPC's dynamic
	// windows, which would let the window grow to megabytes.
	streamWindowBytes = 64 << 10
	// connectionWindowBytes is the same for all the calls of a
	// connection together.
	connectionWindowBytes = 1 << 20
	// minClientPingInterval: a client that pings more often is sent
	// GOAWAY. Clients that set keepalive must ping less often.
	minClientPingInterval = 30 * time.Second

	// The health-only listener is reached by the kubelet, one short call
	// per probe, and maybe by anyone in the cluster: it gets little.
	healthMaxConnections       = 16
	healthStreamsPerConnection = 4
	healthMaxMessageBytes      = 1 << 10
	// healthIdleTimeout: the kubelet makes a connection per probe.
	healthIdleTimeout = 5 * time.Second
	// healthMaxConnectionAge closes even a busy health connection, so
	// that no one holds one of its few connections for long.
	healthMaxConnectionAge      = 30 * time.Second
	healthMaxConnectionAgeGrace = 5 * time.Second
	healthTransportBufferBytes  = 4 << 10
	metricsMaxConnections       = 16
	metricsMaxHeaderBytes       = 16 << 10
	metricsReadTimeout          = 10 * time.Second
	metricsWriteTimeout         = 30 * time.Second
	metricsIdleTimeout          = 30 * time.Second
	metricsReadHeaderTimeout    = 5 * time.Second
)

// transportOptions bound the HTTP/2 connections of a gRPC server.
func transportOptions(streamsPerConnection uint32, keepaliveParams keepalive.ServerParameters) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxHeaderListSize(maxHeaderListBytes),
		grpc.MaxConcurrentStreams(streamsPerConnection),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.InitialWindowSize(streamWindowBytes),
		grpc.InitialConnWindowSize(connectionWindowBytes),
		grpc.KeepaliveParams(keepaliveParams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPingInterval, PermitWithoutStream: true}),
	}
}

// healthServerOptions are the health-only server's: small messages, few
// streams, small buffers.
func healthServerOptions() []grpc.ServerOption {
	keepaliveParams := keepalive.ServerParameters{
		MaxConnectionIdle:     healthIdleTimeout,
		MaxConnectionAge:      healthMaxConnectionAge,
		MaxConnectionAgeGrace: healthMaxConnectionAgeGrace,
	}
	return append(transportOptions(healthStreamsPerConnection, keepaliveParams),
		grpc.MaxRecvMsgSize(healthMaxMessageBytes),
		grpc.ReadBufferSize(healthTransportBufferBytes),
		grpc.WriteBufferSize(healthTransportBufferBytes),
	)
}

// NewHTTPServer serves handler (HTTPHandler) with every timeout set: a
// scraper that connects and says nothing, or keeps an idle keep-alive
// connection, is dropped. Serve it on ServeHTTP's listener.
func NewHTTPServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: metricsReadHeaderTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    metricsMaxHeaderBytes,
	}
}

// LimitHTTPListener caps the connections of the metrics listener.
func LimitHTTPListener(lis net.Listener) net.Listener {
	return netutil.LimitListener(lis, metricsMaxConnections)
}
