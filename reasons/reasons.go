// Package reasons is the one list of the reasons fernet-sidecar gives for
// a failure: the google.rpc.ErrorInfo reason of a failed call and the
// reason of a failed batch item. Clients, dashboards and the Python
// package match on them, so a reason is never renamed.
//
// It is a package of its own, importing only the standard library, so that
// every layer can use it without pulling in another: the engine (fernet
// and totp, whose sentinel errors carry their reason), the server, the Go
// client and the rotation job (which import no engine), and tests. It is
// not part of fernet/, because most reasons are not that engine's: limits,
// TOTP, --allow-methods and admission are the server's, and the Go client
// would then build the engine into every app.
//
// client/python's _errors.py spells the same list; a test in client/ holds
// the two equal.
package reasons

import "errors"

// Domain is the google.rpc.ErrorInfo domain of every error the sidecar
// returns.
const Domain = "fernet-sidecar"

// The reasons.
const (
	// Malformed: not a Fernet token, or its ciphertext does not decrypt
	// under the key that signed it.
	Malformed = "MALFORMED"
	// InvalidSignature: no loaded key verifies the token.
	InvalidSignature = "INVALID_SIGNATURE"
	// Expired: older than the TTL.
	Expired = "EXPIRED"
	// FutureTimestamp: more than 60 s in the future, with a TTL.
	FutureTimestamp = "FUTURE_TIMESTAMP"
	// TokenTooLarge, PlaintextTooLarge, BatchTooLarge: over one of the
	// server's limits.
	TokenTooLarge     = "TOKEN_TOO_LARGE"
	PlaintextTooLarge = "PLAINTEXT_TOO_LARGE"
	BatchTooLarge     = "BATCH_TOO_LARGE"
	// InvalidTOTPParameter: a TOTP call's digits, period, algorithm,
	// window, secret size, account name or issuer is out of range.
	InvalidTOTPParameter = "INVALID_TOTP_PARAMETER"
	// InvalidTOTPSecret: the token decrypts, but not to a secret in the
	// encoding asked for.
	InvalidTOTPSecret = "INVALID_TOTP_SECRET"
	// MethodNotAllowed: the server was started without this method in
	// --allow-methods (with code PERMISSION_DENIED).
	MethodNotAllowed = "METHOD_NOT_ALLOWED"
	// TooManyBatches and TooManyCalls (with code RESOURCE_EXHAUSTED): the
	// sidecar had too many batch calls, or too many other calls, in flight
	// to take one more, and refused it before reading it. Retry later.
	TooManyBatches = "TOO_MANY_BATCHES"
	TooManyCalls   = "TOO_MANY_CALLS"
	// Internal: the server failed; the input may be fine.
	Internal = "INTERNAL"
)

// All lists every reason.
var All = [...]string{
	Malformed, InvalidSignature, Expired, FutureTimestamp, TokenTooLarge,
	PlaintextTooLarge, BatchTooLarge, InvalidTOTPParameter, InvalidTOTPSecret,
	MethodNotAllowed, TooManyBatches, TooManyCalls, Internal,
}

// Token lists the reasons that refuse a token, in the order of the
// server's fernet_decrypt_failures_total series. Go's client matches them
// with ErrInvalidToken, and Python's raises InvalidToken for them.
var Token = [...]string{Malformed, InvalidSignature, Expired, FutureTimestamp, TokenTooLarge}

// IsToken reports whether reason refuses a token.
func IsToken(reason string) bool {
	for _, r := range Token {
		if r == reason {
			return true
		}
	}
	return false
}

// Message is the fixed text of every error of reason, or "" where the
// server writes its own, naming only a limit or a method. (TOO_MANY_*
// has one more fixed text, for a message that did not arrive in time.) The engine's own
// error says more (which byte was wrong, how many characters there were),
// but that detail is the caller's input, and apps log these messages: the
// reason says what was wrong, the message only repeats it in words.
func Message(reason string) string { return messages[reason] }

var messages = map[string]string{
	Malformed:            "not a Fernet token",
	InvalidSignature:     "no loaded key verifies the token",
	Expired:              "the token is older than the TTL",
	FutureTimestamp:      "the token's timestamp is in the future",
	InvalidTOTPParameter: "a TOTP parameter is out of range (digits, period, algorithm or secret encoding)",
	InvalidTOTPSecret:    "the token does not hold a TOTP secret",
	TooManyBatches:       "too many calls in flight; retry later",
	TooManyCalls:         "too many calls in flight; retry later",
	Internal:             "internal error",
}

// Error is an error of a known reason. The engine's sentinel errors (the
// fernet and totp packages') are Errors, so that Of finds the reason of
// any error that wraps one, and no layer above keeps its own mapping.
type Error struct {
	Reason string
	text   string
}

// New returns an error of reason, whose Error() is text.
func New(reason, text string) *Error { return &Error{Reason: reason, text: text} }

func (e *Error) Error() string { return e.text }

// Of returns the reason of err: that of the first Error in its chain, or
// Internal when there is none, since then the input was not to blame.
func Of(err error) string {
	var known *Error
	if errors.As(err, &known) {
		return known.Reason
	}
	return Internal
}
