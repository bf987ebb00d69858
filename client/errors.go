package client

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// sentinels maps each reason to its sentinel; sentinel fills it as the
// sentinels below are made, so that each is written once.
var sentinels = map[string]error{}

// sentinel is a new sentinel error, matched by the errors of reason.
func sentinel(reason, text string) error {
	err := errors.New("fernet-sidecar: " + text)
	sentinels[reason] = err
	return err
}

// The sentinel errors, one per reason the sidecar gives. Match them with
// errors.Is; the error itself is an [*Error].
var (
	// ErrMalformed: not a Fernet token (bad base64, wrong version byte, too
	// short, not whole AES blocks, non-ASCII), or a token a loaded key
	// verifies whose padding is invalid.
	ErrMalformed = sentinel(reasons.Malformed, "malformed token")
	// ErrInvalidSignature: no key the sidecar has verifies the token. The
	// key is missing from the sidecar, or the token was altered.
	ErrInvalidSignature = sentinel(reasons.InvalidSignature, "invalid signature")
	// ErrExpired: the token is older than the TTL.
	ErrExpired = sentinel(reasons.Expired, "token expired")
	// ErrFutureTimestamp: the token is more than 60 s in the future (checked
	// only with a TTL).
	ErrFutureTimestamp = sentinel(reasons.FutureTimestamp, "token timestamp in the future")
	// ErrTokenTooLarge: the token is over the sidecar's size limit.
	ErrTokenTooLarge = sentinel(reasons.TokenTooLarge, "token too large")
	// ErrPlaintextTooLarge: the plaintext is over --max-plaintext-bytes.
	ErrPlaintextTooLarge = sentinel(reasons.PlaintextTooLarge, "plaintext too large")
	// ErrBatchTooLarge: a batch RPC had more items than --max-batch-items.
	// It fails the whole call; lower [WithMaxBatchItems] to match.
	ErrBatchTooLarge = sentinel(reasons.BatchTooLarge, "batch too large")
	// ErrInvalidTOTPParameter: a TOTP call's digits, period, algorithm,
	// window, secret size, account name or issuer is out of range.
	ErrInvalidTOTPParameter = sentinel(reasons.InvalidTOTPParameter, "invalid TOTP parameter")
	// ErrInvalidTOTPSecret: the token decrypts, but not to a TOTP secret in
	// the encoding asked for.
	ErrInvalidTOTPSecret = sentinel(reasons.InvalidTOTPSecret, "invalid TOTP secret")
	// ErrMethodNotAllowed: the sidecar was started without this method in
	// its --allow-methods.
	ErrMethodNotAllowed = sentinel(reasons.MethodNotAllowed, "method not allowed")
	// ErrTooManyBatches and ErrTooManyCalls: the sidecar refused the call
	// (RESOURCE_EXHAUSTED) before doing anything, because too many batch
	// or other calls were in flight, or because its message did not arrive
	// in time. Retry after a backoff; this client does not, since the
	// sidecar is busy rather than away.
	ErrTooManyBatches = sentinel(reasons.TooManyBatches, "too many batches in flight")
	ErrTooManyCalls   = sentinel(reasons.TooManyCalls, "too many calls in flight")
	// ErrInternal: the sidecar failed; the input may be fine.
	ErrInternal = sentinel(reasons.Internal, "internal error")

	// ErrInvalidToken matches every reason a token is refused for:
	// ErrMalformed, ErrInvalidSignature, ErrExpired, ErrFutureTimestamp and
	// ErrTokenTooLarge. It is Go's spelling of Python's InvalidToken.
	ErrInvalidToken = errors.New("fernet-sidecar: invalid token")
)

// Error is a failure the sidecar gave a reason for: a failed call whose
// gRPC status carries a google.rpc.ErrorInfo in domain "fernet-sidecar", or
// one failed item of a batch (its ItemError).
//
// errors.Is(err, ErrExpired) and the like match on Reason. For a failed
// call, GRPCStatus returns the status as the sidecar sent it, so
// status.FromError and status.Code see through the Error; for a batch item
// it returns nil, since the call did not fail.
type Error struct {
	// Reason is one of the reasons of package reasons, such as
	// "EXPIRED". A reason this client does not know matches no sentinel.
	Reason string
	// Message is the sidecar's explanation, for people. It never holds a
	// token, a plaintext or a key.
	Message string

	status *status.Status
}

func (e *Error) Error() string {
	return "fernet-sidecar: " + e.Reason + ": " + e.Message
}

// Is reports whether target is the sentinel of e's reason, or
// ErrInvalidToken for a token reason.
func (e *Error) Is(target error) bool {
	if target == ErrInvalidToken {
		return reasons.IsToken(e.Reason)
	}
	sentinel, ok := sentinels[e.Reason]
	return ok && target == sentinel
}

// GRPCStatus returns the status of the failed call, or nil for a batch
// item's error.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// fromCall turns a failed RPC's error into an *Error when its status
// carries our ErrorInfo, and returns it unchanged otherwise.
func fromCall(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, detail := range st.Details() {
		info, isInfo := detail.(*errdetails.ErrorInfo)
		if isInfo && info.GetDomain() == reasons.Domain && info.GetReason() != "" {
			return &Error{Reason: info.GetReason(), Message: st.Message(), status: st}
		}
	}
	return err
}

// fromItem turns a batch item's ItemError into an *Error.
func fromItem(item *fernetv1.ItemError) error {
	return &Error{Reason: item.GetReason(), Message: item.GetMessage()}
}
