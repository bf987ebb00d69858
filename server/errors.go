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

// tooLarge is input over a limit. Its message names the limit only, never
// the input's size: a message holds nothing the caller sent.
func tooLarge(reason, what string, limit int, unit string) error {
	return &requestError{reason: reason, msg: fmt.Sprintf("%s is over the limit of %d %s", what, limit, unit)}
}

// reasonMessages are the fixed texts of the errors the engine reports, by
// reason. The engine's own error says more (which byte was wrong, how many
// characters there were), but that detail is the caller's input, and apps
// log these messages: the reason says what was wrong, the message only
// repeats it in words.
var reasonMessages = map[string]string{
	fernetv1.ReasonMalformed:            "not a Fernet token",
	fernetv1.ReasonInvalidSignature:     "no loaded key verifies the token",
	fernetv1.ReasonExpired:              "the token is older than the TTL",
	fernetv1.ReasonFutureTimestamp:      "the token's timestamp is in the future",
	fernetv1.ReasonInvalidTOTPParameter: "a TOTP parameter is out of range (digits, period, algorithm or secret encoding)",
	fernetv1.ReasonInvalidTOTPSecret:    "the token does not hold a TOTP secret",
	fernetv1.ReasonInternal:             "internal error",
}

// messageOf is the fixed text of err: a limit's own message, which names
// only the limit, or the text of its reason.
func messageOf(reason string, err error) string {
	var reqErr *requestError
	if errors.As(err, &reqErr) {
		return reqErr.msg
	}
	if msg, ok := reasonMessages[reason]; ok {
		return msg
	}
	return strings.ToLower(strings.ReplaceAll(reason, "_", " "))
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
// anything about the input, INTERNAL otherwise, with an ErrorInfo reason
// and a fixed message (messageOf).
func statusError(operation string, err error) error {
	reason := reasonOf(err)
	code := codes.InvalidArgument
	if reason == fernetv1.ReasonInternal {
		code = codes.Internal
	}
	return reasonedError(code, reason, operation+": "+messageOf(reason, err))
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
	reason := reasonOf(err)
	return &fernetv1.ItemError{Reason: reason, Message: operation + ": " + messageOf(reason, err)}
}

// metricLabel is a reason as a Prometheus label value.
func metricLabel(reason string) string { return strings.ToLower(reason) }
