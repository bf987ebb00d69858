package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// FernetMethods are the names of every FernetService method, e.g.
// "Encrypt", in the order the service declares them.
func FernetMethods() []string {
	var names []string
	for _, method := range fernetv1.FernetService_ServiceDesc.Methods {
		names = append(names, method.MethodName)
	}
	return names
}

// ParseMethods reads a comma-separated list of FernetService method names
// (spaces around a name are ignored), as --allow-methods takes it.
func ParseMethods(list string) ([]string, error) {
	all := FernetMethods()
	var names []string
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(all, name) {
			return nil, fmt.Errorf("unknown method %q: the FernetService methods are %s", name, strings.Join(all, ","))
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// denyMethods refuses the FernetService methods not in allowed, each with
// PERMISSION_DENIED and METHOD_NOT_ALLOWED, counts them and logs each one
// with the peer: a call the app's profile leaves out is either a bug in
// the app or someone using its access. Other services (health,
// reflection) pass.
func denyMethods(allowed []string, metrics *Metrics, logger *slog.Logger) grpc.UnaryServerInterceptor {
	denied := map[string]prometheus.Counter{}
	service := fernetv1.FernetService_ServiceDesc.ServiceName
	for _, name := range FernetMethods() {
		if !slices.Contains(allowed, name) {
			denied["/"+service+"/"+name] = metrics.methodDenied.WithLabelValues(name)
		}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		count, ok := denied[info.FullMethod]
		if !ok {
			return handler(ctx, req)
		}
		count.Inc()
		logger.Warn("call refused: method not allowed", "audit", true, "peer", peerOf(ctx), "method", info.FullMethod,
			"code", codes.PermissionDenied.String(), "reason", reasons.MethodNotAllowed)
		return nil, reasonedError(codes.PermissionDenied, reasons.MethodNotAllowed,
			info.FullMethod+" is not allowed on this server (--allow-methods)")
	}
}
