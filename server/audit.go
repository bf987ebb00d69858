package server

import (
	"context"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// auditCalls logs one line per call: who called, what, with which keys
// (as publicKeyID shows them) and how it ended. It reads only ids and
// reasons, never a token or plaintext.
func auditCalls(logger *slog.Logger, publicKeyID func(id string) string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		st := status.Convert(err)
		logger.Info("call", "audit", true, "peer", peerOf(ctx), "method", info.FullMethod,
			"code", st.Code().String(), "reason", errorReason(st), "key_ids", keyIDsOf(resp, publicKeyID))
		return resp, err
	}
}

// peerOf names the caller: its network and address.
func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.Network() + ":" + p.Addr.String()
	}
	return "unknown"
}

func errorReason(st *status.Status) string {
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// keyIDsOf lists, once each, the key ids a response names, as
// publicKeyID shows them.
func keyIDsOf(resp any, publicKeyID func(id string) string) []string {
	var ids []string
	add := func(id string) {
		id = publicKeyID(id)
		for _, seen := range ids {
			if seen == id {
				return
			}
		}
		if id != "" {
			ids = append(ids, id)
		}
	}
	switch r := resp.(type) {
	case interface{ GetKeyId() string }:
		add(r.GetKeyId())
	case *fernetv1.EncryptBatchResponse:
		addBatchKeyIDs(r.GetResults(), add)
	case *fernetv1.DecryptBatchResponse:
		addBatchKeyIDs(r.GetResults(), add)
	case *fernetv1.ReEncryptBatchResponse:
		addBatchKeyIDs(r.GetResults(), add)
	case *fernetv1.InspectBatchResponse:
		addBatchKeyIDs(r.GetResults(), add)
	}
	return ids
}

// addBatchKeyIDs adds the key id of each item of a batch; a failed item's
// is empty.
func addBatchKeyIDs[Result interface{ GetOk() Ok }, Ok interface{ GetKeyId() string }](results []Result, add func(string)) {
	for _, result := range results {
		add(result.GetOk().GetKeyId())
	}
}
