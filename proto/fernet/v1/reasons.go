package fernetv1

// ErrorDomain is the google.rpc.ErrorInfo domain of every error the
// service returns.
const ErrorDomain = "fernet-sidecar"

// The reasons carried by google.rpc.ErrorInfo on call errors and by
// ItemError on batch items. Clients and dashboards match on them: never
// rename one.
const (
	// ReasonMalformed: not a Fernet token, or its ciphertext does not
	// decrypt under the key that signed it.
	ReasonMalformed = "MALFORMED"
	// ReasonInvalidSignature: no loaded key verifies the token.
	ReasonInvalidSignature = "INVALID_SIGNATURE"
	// ReasonExpired: older than the TTL.
	ReasonExpired = "EXPIRED"
	// ReasonFutureTimestamp: more than 60 s in the future, with a TTL.
	ReasonFutureTimestamp = "FUTURE_TIMESTAMP"
	// ReasonTokenTooLarge, ReasonPlaintextTooLarge, ReasonBatchTooLarge:
	// over one of the server's limits.
	ReasonTokenTooLarge     = "TOKEN_TOO_LARGE"
	ReasonPlaintextTooLarge = "PLAINTEXT_TOO_LARGE"
	ReasonBatchTooLarge     = "BATCH_TOO_LARGE"
	// ReasonInvalidTOTPParameter: a TOTP call's digits, period, algorithm,
	// window, secret size, account name or issuer is out of range.
	ReasonInvalidTOTPParameter = "INVALID_TOTP_PARAMETER"
	// ReasonInvalidTOTPSecret: the token decrypts, but not to a secret in
	// the encoding asked for.
	ReasonInvalidTOTPSecret = "INVALID_TOTP_SECRET"
	// ReasonMethodNotAllowed: the server was started without this method
	// in --allow-methods (with code PERMISSION_DENIED).
	ReasonMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// ReasonInternal: the server failed; the input may be fine.
	ReasonInternal = "INTERNAL"
)

// The reasons of RESOURCE_EXHAUSTED: the sidecar had too many calls in
// flight to take one more, and refused it before reading it. Retry later.
const (
	// ReasonTooManyBatches: too many batch calls waiting or being worked
	// on.
	ReasonTooManyBatches = "TOO_MANY_BATCHES"
	// ReasonTooManyCalls: too many other calls in flight.
	ReasonTooManyCalls = "TOO_MANY_CALLS"
)
