// Package totp makes and checks time-based one-time passwords (RFC 6238)
// as authenticator apps, pyotp and django-otp do. It knows nothing of gRPC
// or of tokens: it is given the secret's bytes and never keeps them.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// Algorithm is the HMAC hash of a secret.
type Algorithm int

// The algorithms of RFC 6238. SHA1 is what authenticator apps assume.
const (
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	default:
		return "SHA1"
	}
}

func (a Algorithm) hash() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	default:
		return sha1.New
	}
}

// Bounds of the parameters.
const (
	MinDigits        = 6
	MaxDigits        = 8
	MaxPeriodSeconds = 3600
	MaxWindow        = 10
	MinSecretBytes   = 16 // RFC 4226 section 4: at least 128 bits
	MaxSecretBytes   = 64
	// maxLabelBytes bounds an account name or issuer.
	maxLabelBytes = 256
)

// Defaults are what authenticator apps assume when a URI does not say.
const (
	DefaultDigits        = 6
	DefaultPeriodSeconds = 30
	DefaultWindow        = 1
	DefaultSecretBytes   = 20 // 160 bits, as RFC 4226 recommends and pyotp makes
)

// ErrInvalidParameter is returned for parameters out of range.
var ErrInvalidParameter error = reasons.New(reasons.InvalidTOTPParameter, "invalid TOTP parameter")

// ErrInvalidSecret is returned for a secret that does not decode. Its
// messages never hold the secret.
var ErrInvalidSecret error = reasons.New(reasons.InvalidTOTPSecret, "invalid TOTP secret")

// Params are how codes are made from a secret. The zero value is not
// valid; Defaults gives pyotp's.
type Params struct {
	Digits        int
	PeriodSeconds int
	Algorithm     Algorithm
}

// Defaults are 6 digits, 30 s and SHA1.
var Defaults = Params{Digits: DefaultDigits, PeriodSeconds: DefaultPeriodSeconds, Algorithm: SHA1}

// Check reports a parameter out of range.
func (p Params) Check() error {
	switch {
	case p.Digits < MinDigits || p.Digits > MaxDigits:
		return fmt.Errorf("%w: digits is %d, want %d to %d", ErrInvalidParameter, p.Digits, MinDigits, MaxDigits)
	case p.PeriodSeconds < 1 || p.PeriodSeconds > MaxPeriodSeconds:
		return fmt.Errorf("%w: period is %d s, want 1 to %d", ErrInvalidParameter, p.PeriodSeconds, MaxPeriodSeconds)
	case p.Algorithm < SHA1 || p.Algorithm > SHA512:
		return fmt.Errorf("%w: unknown algorithm %d", ErrInvalidParameter, int(p.Algorithm))
	}
	return nil
}

// Counter is the time step of t: Unix seconds divided by the period.
func (p Params) Counter(t time.Time) uint64 {
	return uint64(t.Unix()) / uint64(p.PeriodSeconds)
}

// Code is the code of secret at counter (RFC 4226 section 5.3), zero-padded
// to p.Digits.
func (p Params) Code(secret []byte, counter uint64) string {
	var code [MaxDigits]byte
	return string(p.appendCode(code[:0], secret, counter))
}

func (p Params) appendCode(dst, secret []byte, counter uint64) []byte {
	mac := hmac.New(p.Algorithm.hash(), secret)
	var message [8]byte
	binary.BigEndian.PutUint64(message[:], counter)
	mac.Write(message[:])
	sum := mac.Sum(nil)
	offset := sum[len(sum)-1] & 0xf
	value := binary.BigEndian.Uint32(sum[offset:]) & 0x7fffffff
	modulus := uint32(1)
	for range p.Digits {
		modulus *= 10
	}
	value %= modulus
	for divisor := modulus / 10; divisor > 0; divisor /= 10 {
		dst = append(dst, byte('0'+value/divisor%10))
	}
	return dst
}

// Outcome is what Verify made of a code.
type Outcome int

const (
	// InvalidCode: the code matches no step in the window.
	InvalidCode Outcome = iota
	// Valid: the code matches a step after the last one used.
	Valid
	// Replayed: the code matches only steps at or before the last one used.
	Replayed
)

func (o Outcome) String() string {
	switch o {
	case Valid:
		return "valid"
	case Replayed:
		return "replayed"
	default:
		return "invalid_code"
	}
}

// Verification is the result of Verify.
type Verification struct {
	Outcome Outcome
	// Counter is the step the code matched; 0 for InvalidCode.
	Counter uint64
	// Drift is Counter minus the step of now.
	Drift int
}

// Check says how Verify checks a code.
type Check struct {
	Params
	// Window is how many steps either side of now match.
	Window int
	// LastCounter, when set, is the step of the last valid code: a code of
	// that step or an earlier one is replayed (RFC 6238 section 5.2).
	LastCounter *uint64
}

// Verify checks code against secret at now. Every step of the window is
// compared, each in constant time, so the time taken does not tell which
// step (if any) matched. Of the steps that match, the earliest one after
// LastCounter wins, as django-otp's TOTPDevice picks; a code that matches
// only used steps is Replayed.
func Verify(secret []byte, code string, now time.Time, check Check) (Verification, error) {
	if err := check.Params.Check(); err != nil {
		return Verification{}, err
	}
	if check.Window < 0 || check.Window > MaxWindow {
		return Verification{}, fmt.Errorf("%w: window is %d, want 0 to %d", ErrInvalidParameter, check.Window, MaxWindow)
	}
	current := check.Counter(now)
	var buf [MaxDigits]byte
	result := Verification{Outcome: InvalidCode}
	for drift := -check.Window; drift <= check.Window; drift++ {
		if drift < 0 && uint64(-drift) > current {
			continue // before the Unix epoch
		}
		counter := current + uint64(drift)
		matches := subtle.ConstantTimeCompare([]byte(code), check.appendCode(buf[:0], secret, counter)) == 1
		used := check.LastCounter != nil && counter <= *check.LastCounter
		switch {
		case !matches || result.Outcome == Valid:
		case !used:
			result = Verification{Outcome: Valid, Counter: counter, Drift: drift}
		case result.Outcome == InvalidCode:
			result = Verification{Outcome: Replayed, Counter: counter, Drift: drift}
		}
	}
	return result, nil
}

// NewSecret returns size random bytes.
func NewSecret(size int) ([]byte, error) {
	if size < MinSecretBytes || size > MaxSecretBytes {
		return nil, fmt.Errorf("%w: secret size is %d bytes, want %d to %d", ErrInvalidParameter, size, MinSecretBytes, MaxSecretBytes)
	}
	secret := make([]byte, size)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("read random secret: %w", err)
	}
	return secret, nil
}

// base32NoPadding is how secrets are written: pyotp's random_base32 and
// otpauth URIs use no padding.
var base32NoPadding = base32.StdEncoding.WithPadding(base32.NoPadding)

// EncodeBase32 writes secret as pyotp and authenticator apps read it:
// upper-case base32 without padding.
func EncodeBase32(secret []byte) string {
	return base32NoPadding.EncodeToString(secret)
}

// DecodeBase32 reads a base32 secret, padded or not, in any case, with
// spaces anywhere (as apps show it in groups of four).
func DecodeBase32(text []byte) ([]byte, error) {
	cleaned := make([]byte, 0, len(text))
	for _, c := range text {
		switch {
		case c == ' ':
		case 'a' <= c && c <= 'z':
			cleaned = append(cleaned, c-'a'+'A')
		case c == '\r' || c == '\n' || c >= 0x80:
			// Go's decoder skips CR and LF, and without padding takes a
			// 0xFF byte for padding; Python's b32decode refuses them all.
			clear(cleaned)
			return nil, fmt.Errorf("%w: not base32", ErrInvalidSecret)
		default:
			cleaned = append(cleaned, c)
		}
	}
	for len(cleaned) > 0 && cleaned[len(cleaned)-1] == '=' {
		cleaned = cleaned[:len(cleaned)-1]
	}
	secret := make([]byte, base32NoPadding.DecodedLen(len(cleaned)))
	n, err := base32NoPadding.Decode(secret, cleaned)
	clear(cleaned)
	// Go decodes a last group of 1, 3 or 6 characters, which hold no
	// whole byte; Python's b32decode (pyotp's) refuses them.
	if partial := len(cleaned) % 8; partial == 1 || partial == 3 || partial == 6 {
		err = errors.New("incomplete group")
	}
	if err != nil || n == 0 {
		clear(secret)
		return nil, fmt.Errorf("%w: not base32", ErrInvalidSecret)
	}
	return secret[:n], nil
}

// DecodeHex reads a hexadecimal secret, as django-otp's TOTPDevice.key.
func DecodeHex(text []byte) ([]byte, error) {
	secret := make([]byte, hex.DecodedLen(len(text)))
	n, err := hex.Decode(secret, text)
	if err != nil || n == 0 {
		clear(secret)
		return nil, fmt.Errorf("%w: not hexadecimal", ErrInvalidSecret)
	}
	return secret[:n], nil
}

// Enrolment is what an authenticator app is told about a secret.
type Enrolment struct {
	Params
	AccountName string
	Issuer      string
}

// Check reports an empty or overlong account name, or a colon in the
// account name or issuer, which would split the URI's label wrongly.
func (e Enrolment) Check() error {
	if err := e.Params.Check(); err != nil {
		return err
	}
	switch {
	case e.AccountName == "":
		return fmt.Errorf("%w: the account name is empty", ErrInvalidParameter)
	case len(e.AccountName) > maxLabelBytes || len(e.Issuer) > maxLabelBytes:
		return fmt.Errorf("%w: the account name and issuer may have at most %d bytes each", ErrInvalidParameter, maxLabelBytes)
	case strings.Contains(e.AccountName, ":") || strings.Contains(e.Issuer, ":"):
		return fmt.Errorf("%w: the account name and issuer may not contain a colon", ErrInvalidParameter)
	}
	return nil
}

// ProvisioningURI is the otpauth:// URI of Google's Key Uri Format for a
// base32 secret, written as pyotp's provisioning_uri writes it: the
// parameters in its order, and only those that differ from the defaults.
func (e Enrolment) ProvisioningURI(base32Secret string) string {
	var uri strings.Builder
	uri.WriteString("otpauth://totp/")
	if e.Issuer != "" {
		uri.WriteString(uriEscape(e.Issuer) + ":")
	}
	uri.WriteString(uriEscape(e.AccountName) + "?secret=" + base32Secret)
	if e.Issuer != "" {
		uri.WriteString("&issuer=" + uriEscape(e.Issuer))
	}
	if e.Algorithm != SHA1 {
		uri.WriteString("&algorithm=" + e.Algorithm.String())
	}
	if e.Digits != DefaultDigits {
		uri.WriteString("&digits=" + strconv.Itoa(e.Digits))
	}
	if e.PeriodSeconds != DefaultPeriodSeconds {
		uri.WriteString("&period=" + strconv.Itoa(e.PeriodSeconds))
	}
	return uri.String()
}

// uriEscape percent-encodes all but the unreserved characters, with %20
// for a space, as pyotp does (Python's quote and urlencode).
func uriEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
