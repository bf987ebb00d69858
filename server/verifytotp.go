package server

import (
	"context"
	"fmt"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// VerifyTOTP checks a code against the secret in a token. The secret
// lives only inside this call, and is wiped before it returns.
func (s *Service) VerifyTOTP(_ context.Context, req *fernetv1.VerifyTOTPRequest) (*fernetv1.VerifyTOTPResponse, error) {
	return runUnary(s, s.metrics.verifyTOTP, nil, req, s.verifyTOTP)
}

func (s *Service) verifyTOTP(c call, req *fernetv1.VerifyTOTPRequest, t *tally) (*fernetv1.VerifyTOTPResponse, error) {
	decrypted, verification, err := s.checkTOTP(c.keyring, req, c.now)
	t.decrypted(decrypted.Primary, err)
	if err != nil {
		return nil, err
	}
	s.metrics.totpVerifications[verification.Outcome].Inc()
	return &fernetv1.VerifyTOTPResponse{
		Outcome:        totpOutcomeOf[verification.Outcome],
		Counter:        verification.Counter,
		Drift:          int32(verification.Drift),
		KeyId:          decrypted.KeyID,
		NeedsReencrypt: !decrypted.Primary,
	}, nil
}

var totpOutcomeOf = map[totp.Outcome]fernetv1.TOTPOutcome{
	totp.Valid:       fernetv1.TOTPOutcome_TOTP_OUTCOME_VALID,
	totp.InvalidCode: fernetv1.TOTPOutcome_TOTP_OUTCOME_INVALID_CODE,
	totp.Replayed:    fernetv1.TOTPOutcome_TOTP_OUTCOME_REPLAYED,
}

// checkTOTP decrypts the token (with no TTL: a secret is kept for years)
// and checks the code against the secret in it. The returned Decrypted
// has no plaintext.
func (s *Service) checkTOTP(keyring *fernet.Keyring, req *fernetv1.VerifyTOTPRequest, now time.Time) (fernet.Decrypted, totp.Verification, error) {
	params, err := totpParams(req.GetDigits(), req.GetPeriodSeconds(), req.GetAlgorithm())
	if err != nil {
		return fernet.Decrypted{}, totp.Verification{}, err
	}
	check := totp.Check{Params: params, Window: totp.DefaultWindow, LastCounter: req.LastCounter}
	if req.Window != nil {
		check.Window = int(req.GetWindow())
	}
	decode, err := secretDecoder(req.GetEncoding())
	if err != nil {
		return fernet.Decrypted{}, totp.Verification{}, err
	}
	decrypted, err := s.decryptToken(keyring, req.GetToken(), nil, now)
	plaintext := decrypted.Plaintext
	defer clear(plaintext)
	decrypted.Plaintext = nil
	if err != nil {
		return fernet.Decrypted{}, totp.Verification{}, err
	}
	secret, err := decode(plaintext)
	defer clear(secret)
	if err != nil {
		return decrypted, totp.Verification{}, err
	}
	verification, err := totp.Verify(secret, req.GetCode(), now, check)
	return decrypted, verification, err
}

func secretDecoder(encoding fernetv1.TOTPSecretEncoding) (func([]byte) ([]byte, error), error) {
	switch encoding {
	case fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_UNSPECIFIED, fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_BASE32:
		return totp.DecodeBase32, nil
	case fernetv1.TOTPSecretEncoding_TOTP_SECRET_ENCODING_HEX:
		return totp.DecodeHex, nil
	default:
		return nil, fmt.Errorf("%w: unknown secret encoding %d", totp.ErrInvalidParameter, encoding)
	}
}
