package server

import (
	"context"
	"fmt"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// CreateTOTP makes a fresh secret and returns it as a token under the
// primary key and in the provisioning URI, and nowhere else.
func (s *Service) CreateTOTP(_ context.Context, req *fernetv1.CreateTOTPRequest) (*fernetv1.CreateTOTPResponse, error) {
	return runUnary(s, s.metrics.createTOTP, nil, req, s.createTOTP)
}

func (s *Service) createTOTP(c call, req *fernetv1.CreateTOTPRequest, t *tally) (*fernetv1.CreateTOTPResponse, error) {
	resp, err := s.enrolTOTP(c.keyring, req)
	t.encrypted(err)
	return resp, err
}

// enrolTOTP makes the secret, the token that holds it and the
// provisioning URI.
func (s *Service) enrolTOTP(keyring *fernet.Keyring, req *fernetv1.CreateTOTPRequest) (*fernetv1.CreateTOTPResponse, error) {
	params, err := totpParams(req.GetDigits(), req.GetPeriodSeconds(), req.GetAlgorithm())
	if err != nil {
		return nil, err
	}
	enrolment := totp.Enrolment{Params: params, AccountName: req.GetAccountName(), Issuer: req.GetIssuer()}
	if err := enrolment.Check(); err != nil {
		return nil, err
	}
	size := int(req.GetSecretBytes())
	if size == 0 {
		size = totp.DefaultSecretBytes
	}
	secret, err := totp.NewSecret(size)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	// The token holds the base32 text, as apps that use pyotp store it.
	text := totp.EncodeBase32(secret)
	encrypted, err := s.encryptPlaintext(keyring, []byte(text))
	if err != nil {
		return nil, err
	}
	return &fernetv1.CreateTOTPResponse{
		Token:           encrypted.Token,
		KeyId:           encrypted.KeyID,
		ProvisioningUri: enrolment.ProvisioningURI(text),
	}, nil
}

// totpParams reads the parameters of a TOTP call; zero values are the
// defaults. The totp package checks the ranges.
func totpParams(digits, periodSeconds uint32, algorithm fernetv1.TOTPAlgorithm) (totp.Params, error) {
	params := totp.Defaults
	if digits != 0 {
		params.Digits = int(digits)
	}
	if periodSeconds != 0 {
		params.PeriodSeconds = int(periodSeconds)
	}
	switch algorithm {
	case fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_UNSPECIFIED, fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA1:
		params.Algorithm = totp.SHA1
	case fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA256:
		params.Algorithm = totp.SHA256
	case fernetv1.TOTPAlgorithm_TOTP_ALGORITHM_SHA512:
		params.Algorithm = totp.SHA512
	default:
		return totp.Params{}, fmt.Errorf("%w: unknown algorithm %d", totp.ErrInvalidParameter, algorithm)
	}
	return params, params.Check()
}
