package server

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every error we return.
const ErrorDomain = "fernet-sidecar"

// Reasons carried by google.rpc.ErrorInfo on call errors and by ItemError
// on batch items. Clients and dashboards match on them: never rename one.
const (
	ReasonMalformed         = "MALFORMED"
	ReasonInvalidSignature  = "INVALID_SIGNATURE"
	ReasonExpired           = "EXPIRED"
	ReasonFutureTimestamp   = "FUTURE_TIMESTAMP"
	ReasonTokenTooLarge     = "TOKEN_TOO_LARGE"
	ReasonPlaintextTooLarge = "PLAINTEXT_TOO_LARGE"
	ReasonBatchTooLarge     = "BATCH_TOO_LARGE"
	ReasonInternal          = "INTERNAL"
)

// decryptFailureReasons are the reasons a token can be refused for, in the
// order they are listed in metrics.
var decryptFailureReasons = []string{
	ReasonMalformed, ReasonInvalidSignature, ReasonExpired, ReasonFutureTimestamp, ReasonTokenTooLarge,
}

// requestError is input that a limit refuses before the engine sees it.
type requestError struct {
	reason string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func tooLarge(reason, what string, size, limit int) error {
	return &requestError{reason: reason, msg: fmt.Sprintf("%s is %d, the limit is %d", what, size, limit)}
}

// reasonOf classifies an error of one item of work.
func reasonOf(err error) string {
	var reqErr *requestError
	switch {
	case errors.As(err, &reqErr):
		return reqErr.reason
	case errors.Is(err, fernet.ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, fernet.ErrInvalidSignature):
		return ReasonInvalidSignature
	case errors.Is(err, fernet.ErrExpired):
		return ReasonExpired
	case errors.Is(err, fernet.ErrFutureTimestamp):
		return ReasonFutureTimestamp
	default:
		return ReasonInternal
	}
}

// statusError is the gRPC status of a failed call: INVALID_ARGUMENT for
// anything about the input, INTERNAL otherwise, with an ErrorInfo reason.
// Every message it wraps is built to hold no token, plaintext or key.
func statusError(operation string, err error) error {
	reason := reasonOf(err)
	code := codes.InvalidArgument
	if reason == ReasonInternal {
		code = codes.Internal
	}
	st := status.New(code, operation+": "+err.Error())
	detailed, detailErr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	if detailErr != nil {
		return st.Err()
	}
	return detailed.Err()
}

// itemError is the ItemError of one failed batch item.
func itemError(operation string, err error) *fernetv1.ItemError {
	return &fernetv1.ItemError{Reason: reasonOf(err), Message: operation + ": " + err.Error()}
}

// metricLabel is a reason as a Prometheus label value.
func metricLabel(reason string) string { return strings.ToLower(reason) }
