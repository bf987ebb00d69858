package client

import (
	"context"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// TOTPAlgorithm is the HMAC hash of a TOTP secret. The zero value is SHA1.
type TOTPAlgorithm int32

// The algorithms of RFC 6238.
const (
	TOTPSHA1   = TOTPAlgorithm(fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA1)
	TOTPSHA256 = TOTPAlgorithm(fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA256)
	TOTPSHA512 = TOTPAlgorithm(fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA512)
)

// TOTPParams are how codes are made from a secret. Zero values are the
// defaults authenticator apps assume: 6 digits, 30 s, SHA1.
type TOTPParams struct {
	Digits        int
	PeriodSeconds int
	Algorithm     TOTPAlgorithm
}

// TOTPEnrolRequest asks for a new secret.
type TOTPEnrolRequest struct {
	// AccountName labels the entry in the authenticator app, e.g. the
	// user's email. Required; no colon.
	AccountName string
	// Issuer names the service in the app. No colon.
	Issuer string
	TOTPParams
	// SecretBytes is the secret's size, 16 to 64; 0 means 20 (160 bits).
	SecretBytes int
}

// TOTPEnrolment is a new secret, which the caller sees only inside the
// provisioning URI.
type TOTPEnrolment struct {
	// Token holds the secret (as base32 text) under the primary key: store
	// it where the app stores TOTP secrets.
	Token string
	// KeyID is the id of the primary key, which made the token.
	KeyID string
	// ProvisioningURI is the otpauth://totp/ URI to show once as a QR
	// code. It holds the secret in the clear: never store or log it.
	ProvisioningURI string
}

// TOTPVerifyRequest is a code to check against the secret in a token.
type TOTPVerifyRequest struct {
	Token string
	// Code is what the user typed: exactly Digits ASCII digits.
	Code string
	// TOTPParams must be those the secret was enrolled with.
	TOTPParams
	// LastCounter is TOTPVerification.Counter of this secret's last valid
	// code: a code of that step or an earlier one is TOTPReplayed. nil
	// accepts any step in the window.
	LastCounter *uint64
	// Window is how many time steps either side of now are accepted, 0 to
	// 10; nil means 1.
	Window *int
	// HexSecret says the token holds the secret in hexadecimal (as
	// django-otp's TOTPDevice.key), not base32 (as pyotp).
	HexSecret bool
}

// TOTPOutcome is what VerifyTOTP made of a code.
type TOTPOutcome int32

// The outcomes of VerifyTOTP.
const (
	TOTPValid       = TOTPOutcome(fernetv1.TOTPOutcome_TOTP_OUTCOME_VALID)
	TOTPInvalidCode = TOTPOutcome(fernetv1.TOTPOutcome_TOTP_OUTCOME_INVALID_CODE)
	TOTPReplayed    = TOTPOutcome(fernetv1.TOTPOutcome_TOTP_OUTCOME_REPLAYED)
)

func (o TOTPOutcome) String() string {
	switch o {
	case TOTPValid:
		return "VALID"
	case TOTPInvalidCode:
		return "INVALID_CODE"
	case TOTPReplayed:
		return "REPLAYED"
	default:
		return fernetv1.TOTPOutcome(o).String()
	}
}

// TOTPVerification is what VerifyTOTP made of a code.
type TOTPVerification struct {
	Outcome TOTPOutcome
	// Counter is the time step the code matched (0 for TOTPInvalidCode).
	// After TOTPValid, store it and pass it as LastCounter next time.
	Counter uint64
	// Drift is the matched step minus the current one.
	Drift int
	// KeyID is the id of the key that verified the token.
	KeyID string
	// NeedsReEncrypt is true when the token was not made by the primary key.
	NeedsReEncrypt bool
}

// Valid reports whether the code was good and not used before.
func (v TOTPVerification) Valid() bool { return v.Outcome == TOTPValid }

// CreateTOTP makes a new random TOTP secret in the sidecar, and returns it
// only as a token and in the provisioning URI. A parameter out of range
// fails with ErrInvalidTOTPParameter.
func (c *Client) CreateTOTP(ctx context.Context, req TOTPEnrolRequest) (TOTPEnrolment, error) {
	wire := &fernetv1.CreateTOTPRequest{
		AccountName:   req.AccountName,
		Issuer:        req.Issuer,
		Digits:        uint32(req.Digits),
		PeriodSeconds: uint32(req.PeriodSeconds),
		Algorithm:     fernetv1.TOTPAlgorithm(req.Algorithm),
		SecretBytes:   uint32(req.SecretBytes),
	}
	return unary(ctx, c, c.rpc.CreateTOTP, wire, totpEnrolment)
}

func totpEnrolment(resp *fernetv1.CreateTOTPResponse) TOTPEnrolment {
	return TOTPEnrolment{Token: resp.GetToken(), KeyID: resp.GetKeyId(), ProvisioningURI: resp.GetProvisioningUri()}
}

// VerifyTOTP checks a code against the secret in a token, which never
// leaves the sidecar. A wrong or replayed code is an Outcome, not an
// error; a token that does not decrypt fails as Decrypt does
// (ErrInvalidToken), one that holds no secret with ErrInvalidTOTPSecret.
func (c *Client) VerifyTOTP(ctx context.Context, req TOTPVerifyRequest) (TOTPVerification, error) {
	wire := &fernetv1.VerifyTOTPRequest{
		Token:         req.Token,
		Code:          req.Code,
		LastCounter:   req.LastCounter,
		Digits:        uint32(req.Digits),
		PeriodSeconds: uint32(req.PeriodSeconds),
		Algorithm:     fernetv1.TOTPAlgorithm(req.Algorithm),
	}
	if req.Window != nil {
		window := uint32(*req.Window)
		wire.Window = &window
	}
	if req.HexSecret {
		wire.Encoding = fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_HEX
	}
	return unary(ctx, c, c.rpc.VerifyTOTP, wire, totpVerification)
}

func totpVerification(resp *fernetv1.VerifyTOTPResponse) TOTPVerification {
	return TOTPVerification{
		Outcome:        TOTPOutcome(resp.GetOutcome()),
		Counter:        resp.GetCounter(),
		Drift:          int(resp.GetDrift()),
		KeyID:          resp.GetKeyId(),
		NeedsReEncrypt: resp.GetNeedsReencrypt(),
	}
}
