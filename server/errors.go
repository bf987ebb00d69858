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
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// decryptFailureReasons are the reasons a token can be refused for, in the
// order they are listed in metrics.
var decryptFailureReasons = [...]string{
	fernetv1.ReasonMalformed, fernetv1.ReasonInvalidSignature, fernetv1.ReasonExpired, fernetv1.ReasonFutureTimestamp, fernetv1.ReasonTokenTooLarge,
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
		return fernetv1.ReasonMalformed
	case errors.Is(err, fernet.ErrInvalidSignature):
		return fernetv1.ReasonInvalidSignature
	case errors.Is(err, fernet.ErrExpired):
		return fernetv1.ReasonExpired
	case errors.Is(err, fernet.ErrFutureTimestamp):
		return fernetv1.ReasonFutureTimestamp
	case errors.Is(err, totp.ErrInvalidParameter):
		return fernetv1.ReasonInvalidTOTPParameter
	case errors.Is(err, totp.ErrInvalidSecret):
		return fernetv1.ReasonInvalidTOTPSecret
	default:
		return fernetv1.ReasonInternal
	}
}

// statusError is the gRPC status of a failed call: INVALID_ARGUMENT for
// anything about the input, INTERNAL otherwise, with an ErrorInfo reason.
// Every message it wraps is built to hold no token, plaintext or key.
func statusError(operation string, err error) error {
	reason := reasonOf(err)
	code := codes.InvalidArgument
	if reason == fernetv1.ReasonInternal {
		code = codes.Internal
	}
	return reasonedError(code, reason, operation+": "+err.Error())
}

// reasonedError is a gRPC status with an ErrorInfo of reason.
func reasonedError(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	detailed, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: fernetv1.ErrorDomain})
	if err != nil {
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
