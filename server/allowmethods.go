package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

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

// denyMethods makes the FernetService methods of desc not in allowed
// refuse every call with PERMISSION_DENIED and METHOD_NOT_ALLOWED, count
// it and log it with the peer: a call the app's profile leaves out is
// either a bug in the app or someone using its access. It replaces their
// handlers, admission's included, so that a refused call is not read and
// takes no room; the interceptors still see it, with no request.
func denyMethods(desc *grpc.ServiceDesc, allowed []string, metrics *Metrics, logger *slog.Logger) *grpc.ServiceDesc {
	served := *desc
	served.Methods = slices.Clone(desc.Methods)
	for i, method := range served.Methods {
		if slices.Contains(allowed, method.MethodName) {
			continue
		}
		fullMethod := "/" + desc.ServiceName + "/" + method.MethodName
		denied := metrics.methodDenied.WithLabelValues(method.MethodName)
		refuse := func(ctx context.Context, _ any) (any, error) {
			denied.Inc()
			logger.Warn("call refused: method not allowed", "audit", true, "peer", peerOf(ctx), "method", fullMethod,
				"code", codes.PermissionDenied.String(), "reason", reasons.MethodNotAllowed)
			return nil, reasonedError(codes.PermissionDenied, reasons.MethodNotAllowed,
				fullMethod+" is not allowed on this server (--allow-methods)")
		}
		served.Methods[i].Handler = func(srv any, ctx context.Context, _ func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			if interceptor == nil {
				return refuse(ctx, nil)
			}
			return interceptor(ctx, nil, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, refuse)
		}
	}
	return &served
}
