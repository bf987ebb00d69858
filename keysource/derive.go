package keysource

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// Derivation says how a configured value becomes a key.
type Derivation string

const (
	// DerivationNone: the value is a Fernet key.
	DerivationNone Derivation = "none"
	// DerivationDjangoFernetFields: the value is a secret (Django's
	// SECRET_KEY, or an entry of FERNET_KEYS) from which
	// django-fernet-fields derives its key with HKDF, so the data that
	// library wrote can be read and rotated here.
	DerivationDjangoFernetFields Derivation = "django-fernet-fields"
	// DerivationSQLAlchemyUtils: the value is the key given to
	// sqlalchemy-utils' StringEncryptedType(..., FernetEngine), which uses
	// the SHA-256 of it as the Fernet key, so its columns can be read and
	// rotated here.
	DerivationSQLAlchemyUtils Derivation = "sqlalchemy-utils"
)

// ParseDerivation accepts the names of the derivations.
func ParseDerivation(name string) (Derivation, error) {
	switch d := Derivation(name); d {
	case DerivationNone, DerivationDjangoFernetFields, DerivationSQLAlchemyUtils:
		return d, nil
	default:
		return "", fmt.Errorf("unknown key derivation %q (want %s, %s or %s)", name, DerivationNone, DerivationDjangoFernetFields, DerivationSQLAlchemyUtils)
	}
}

// key turns one configured value into a key.
func (d Derivation) key(value string) (*fernet.Key, error) {
	switch d {
	case DerivationDjangoFernetFields:
		return DjangoFernetFieldsKey(value)
	case DerivationSQLAlchemyUtils:
		return SQLAlchemyUtilsKey(value)
	default:
		return fernet.ParseKey(value)
	}
}

// DjangoFernetFieldsKey is django-fernet-fields' derive_fernet_key:
// HKDF-SHA256 over the secret's UTF-8 bytes, 32 bytes long, with its fixed
// salt and info.
func DjangoFernetFieldsKey(secret string) (*fernet.Key, error) {
	raw, err := hkdf.Key(sha256.New, []byte(secret), []byte("django-fernet-fields-hkdf-salt"), "django-fernet-fields", 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return fernet.KeyFromBytes(raw)
}

// SQLAlchemyUtilsKey is sqlalchemy-utils' FernetEngine key: the SHA-256 of
// the configured key's UTF-8 bytes (EncryptionDecryptionBaseEngine._update_key).
func SQLAlchemyUtilsKey(secret string) (*fernet.Key, error) {
	sum := sha256.Sum256([]byte(secret))
	return fernet.KeyFromBytes(sum[:])
}

// fromSecret says whether values are secrets that keys are derived from.
func (d Derivation) fromSecret() bool {
	return d == DerivationDjangoFernetFields || d == DerivationSQLAlchemyUtils
}

// separators split a list of values. A Django secret may hold a comma, so
// derived secrets are split on newlines only.
func (d Derivation) separators() string {
	if d.fromSecret() {
		return "\n"
	}
	return ",\n"
}

// fileValue is a value read from a file. A secret is used byte for byte,
// so the line break that editors and `echo` leave at the end is dropped.
func (d Derivation) fileValue(content string) string {
	if !d.fromSecret() {
		return content
	}
	return strings.TrimSuffix(strings.TrimSuffix(content, "\n"), "\r")
}
