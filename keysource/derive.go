package keysource

import (
	"crypto/hkdf"
	"crypto/pbkdf2"
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
	// DerivationDjangoFernetEncryptedFields: the value is a secret (Django's
	// SECRET_KEY, or an entry of SECRET_KEY_FALLBACKS) from which
	// django-fernet-encrypted-fields derives one key per salt of its
	// SALT_KEY setting (Source.SaltVar) with PBKDF2.
	DerivationDjangoFernetEncryptedFields Derivation = "django-fernet-encrypted-fields"
	// DerivationSQLAlchemyUtils: the value is the key given to
	// sqlalchemy-utils' StringEncryptedType(..., FernetEngine), which uses
	// the SHA-256 of it as the Fernet key, so its columns can be read and
	// rotated here.
	DerivationSQLAlchemyUtils Derivation = "sqlalchemy-utils"
)

// DjangoFernetEncryptedFieldsIterations is that library's PBKDF2 count.
const DjangoFernetEncryptedFieldsIterations = 100_000

// ParseDerivation accepts the names of the derivations.
func ParseDerivation(name string) (Derivation, error) {
	switch d := Derivation(name); d {
	case DerivationNone, DerivationDjangoFernetFields, DerivationDjangoFernetEncryptedFields, DerivationSQLAlchemyUtils:
		return d, nil
	default:
		return "", fmt.Errorf("unknown key derivation %q (want %s, %s, %s or %s)", name,
			DerivationNone, DerivationDjangoFernetFields, DerivationDjangoFernetEncryptedFields, DerivationSQLAlchemyUtils)
	}
}

// keys turns one configured value into its keys: one, or for
// django-fernet-encrypted-fields one per salt, in the salts' order.
func (d Derivation) keys(value string, salts []string) ([]*fernet.Key, error) {
	var key *fernet.Key
	var err error
	switch d {
	case DerivationDjangoFernetEncryptedFields:
		return DjangoFernetEncryptedFieldsKeys(value, salts)
	case DerivationDjangoFernetFields:
		key, err = DjangoFernetFieldsKey(value)
	case DerivationSQLAlchemyUtils:
		key, err = SQLAlchemyUtilsKey(value)
	default:
		key, err = fernet.ParseKey(value)
	}
	if err != nil {
		return nil, err
	}
	return []*fernet.Key{key}, nil
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

// DjangoFernetEncryptedFieldsKeys is django-fernet-encrypted-fields' keys
// of one secret: for each salt, PBKDF2-HMAC-SHA256 over the secret's UTF-8
// bytes, salted with the salt's, 100,000 iterations, 32 bytes. The library
// lists them for SECRET_KEY first, then each of SECRET_KEY_FALLBACKS, each
// secret's in the salts' order; its first is the one it encrypts with.
func DjangoFernetEncryptedFieldsKeys(secret string, salts []string) ([]*fernet.Key, error) {
	if len(salts) == 0 {
		return nil, fmt.Errorf("%s derives its keys from salts, and none is set", DerivationDjangoFernetEncryptedFields)
	}
	keys := make([]*fernet.Key, 0, len(salts))
	for _, salt := range salts {
		raw, err := pbkdf2.Key(sha256.New, secret, []byte(salt), DjangoFernetEncryptedFieldsIterations, 32)
		if err != nil {
			return nil, fmt.Errorf("derive key: %w", err)
		}
		key, err := fernet.KeyFromBytes(raw)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// SQLAlchemyUtilsKey is sqlalchemy-utils' FernetEngine key: the SHA-256 of
// the configured key's UTF-8 bytes (EncryptionDecryptionBaseEngine._update_key).
func SQLAlchemyUtilsKey(secret string) (*fernet.Key, error) {
	sum := sha256.Sum256([]byte(secret))
	return fernet.KeyFromBytes(sum[:])
}

// derived reports whether values are secrets that keys are derived from.
func (d Derivation) derived() bool {
	return d == DerivationDjangoFernetFields || d == DerivationDjangoFernetEncryptedFields || d == DerivationSQLAlchemyUtils
}

// separators split a list of values. A Django secret may hold a comma, so
// derived secrets are split on newlines only.
func (d Derivation) separators() string {
	if d.derived() {
		return "\n"
	}
	return ",\n"
}

// fileValue is a value read from a file. A secret is used byte for byte,
// so the line break that editors and `echo` leave at the end is dropped.
func (d Derivation) fileValue(content string) string {
	if !d.derived() {
		return content
	}
	return strings.TrimSuffix(strings.TrimSuffix(content, "\n"), "\r")
}
