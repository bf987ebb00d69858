package server

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// tooLarge is input over a limit, refused before the engine sees it. Its
// message names the limit only, never the input's size: a message holds
// nothing the caller sent.
func tooLarge(reason, what string, limit int, unit string) error {
	return reasons.New(reason, fmt.Sprintf("%s is over the limit of %d %s", what, limit, unit))
}

// messageOf is the fixed text of an error of reason: the reason's own, or
// for a limit, which has none, the message tooLarge gave it.
func messageOf(reason string, err error) string {
	if msg := reasons.Message(reason); msg != "" {
		return msg
	}
	var limit *reasons.Error
	if errors.As(err, &limit) {
		return limit.Error()
	}
	return ""
}

// statusError is the gRPC status of a failed call: INVALID_ARGUMENT for
// anything about the input, INTERNAL otherwise, with an ErrorInfo reason
// and a fixed message (messageOf).
func statusError(operation string, err error) error {
	reason := reasons.Of(err)
	code := codes.InvalidArgument
	if reason == reasons.Internal {
		code = codes.Internal
	}
	return reasonedError(code, reason, operation+": "+messageOf(reason, err))
}

// reasonedError is a gRPC status with an ErrorInfo of reason.
func reasonedError(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	detailed, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: reasons.Domain})
	if err != nil {
		return st.Err()
	}
	return detailed.Err()
}

// itemError is the ItemError of one failed batch item.
func itemError(operation string, err error) *fernetv1.ItemError {
	reason := reasons.Of(err)
	return &fernetv1.ItemError{Reason: reason, Message: operation + ": " + messageOf(reason, err)}
}

// metricLabel is a reason as a Prometheus label value.
func metricLabel(reason string) string { return strings.ToLower(reason) }
