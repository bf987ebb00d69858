// Package keysource loads the sidecar's keys from environment variables and
// the files they name (Docker and Kubernetes secrets), the way Django and
// Flask apps already configure Fernet keys.
package keysource

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// FileSuffix turns a variable name into the name of the variable that holds
// a path to read the value from instead, as the official Docker images do.
const FileSuffix = "_FILE"

// ErrNoPrimaryKey means no primary key is configured at all.
var ErrNoPrimaryKey = errors.New("no primary key")

// Source says where the keys are.
type Source struct {
	// PrimaryVar names the variable holding the primary key
	// (DJANGO_ENCRYPTION_KEY), or PrimaryVar+"_FILE" a file holding it.
	PrimaryVar string
	// DecryptOnlyVar names the variable holding the decrypt-only keys
	// (OLD_DJANGO_ENCRYPTION_KEY), separated by commas or newlines, or
	// DecryptOnlyVar+"_FILE" a file holding them.
	DecryptOnlyVar string
	// PrimaryDerivation and DecryptOnlyDerivation turn the configured
	// values into keys; the zero value means DerivationNone. They differ
	// while data moves off derived keys: a plain primary, derived old keys.
	PrimaryDerivation     Derivation
	DecryptOnlyDerivation Derivation
	// SaltVar names the variable holding django-fernet-encrypted-fields'
	// salts (its SALT_KEY setting), one per line, the one it encrypts with
	// first; or SaltVar+"_FILE" a file holding them. Read only when a
	// derivation is DerivationDjangoFernetEncryptedFields.
	SaltVar string
	// DevKeyFile, when set, is where the development key is kept, used
	// when no primary key is configured (--dev). See DevKey.
	DevKeyFile string
	// LookupEnv reads a variable; os.LookupEnv in production.
	LookupEnv func(string) (string, bool)
}

// Loaded is the keyring and how its primary key was found.
type Loaded struct {
	Keyring *fernet.Keyring
	// DevKey is true when the primary is the development key, because
	// none was configured and DevKeyFile was set.
	DevKey bool
	// DevKeyCreated is true when the development key was made just now.
	DevKeyCreated bool
}

// Load reads and parses every configured key. Errors name the variable or
// file that is wrong, never the value.
func (s Source) Load() (Loaded, error) {
	salts, err := s.loadSalts()
	if err != nil {
		return Loaded{}, err
	}
	primary, err := s.loadPrimary(salts)
	if err != nil {
		return Loaded{}, err
	}
	decryptOnly, err := s.loadDecryptOnly(salts)
	if err != nil {
		return Loaded{}, err
	}
	if len(primary) > 0 {
		// A secret with several salts: the first salt's key encrypts, the
		// others decrypt, before the older secrets' keys.
		return Loaded{Keyring: fernet.NewKeyring(primary[0], append(primary[1:], decryptOnly...)...)}, nil
	}
	if s.DevKeyFile == "" {
		return Loaded{}, fmt.Errorf("%w: set %s or %s%s (make a key with: fernet-sidecar genkey), or run with --dev for a development key",
			ErrNoPrimaryKey, s.PrimaryVar, s.PrimaryVar, FileSuffix)
	}
	dev, created, err := DevKey(s.DevKeyFile)
	if err != nil {
		return Loaded{}, err
	}
	return Loaded{Keyring: fernet.NewKeyring(dev, decryptOnly...), DevKey: true, DevKeyCreated: created}, nil
}

// loadSalts reads SaltVar when a derivation needs salts.
func (s Source) loadSalts() ([]string, error) {
	d := DerivationDjangoFernetEncryptedFields
	if s.PrimaryDerivation != d && s.DecryptOnlyDerivation != d {
		return nil, nil
	}
	value, from, err := s.read(s.SaltVar, d)
	if err != nil {
		return nil, err
	}
	salts := splitKeys(value, d.separators())
	if len(salts) == 0 {
		return nil, fmt.Errorf("%s: not set, and the %s derivation needs its salts (SALT_KEY, one per line)", from, d)
	}
	return salts, nil
}

// loadPrimary returns the primary key first, then any other keys its value
// derives.
func (s Source) loadPrimary(salts []string) ([]*fernet.Key, error) {
	value, from, err := s.read(s.PrimaryVar, s.PrimaryDerivation)
	if err != nil || isBlank(value) {
		return nil, err
	}
	if len(splitKeys(value, s.PrimaryDerivation.separators())) > 1 {
		return nil, fmt.Errorf("%s: holds more than one key; put older keys in %s", from, s.DecryptOnlyVar)
	}
	keys, err := s.PrimaryDerivation.keys(value, salts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return keys, nil
}

func (s Source) loadDecryptOnly(salts []string) ([]*fernet.Key, error) {
	value, from, err := s.read(s.DecryptOnlyVar, s.DecryptOnlyDerivation)
	if err != nil {
		return nil, err
	}
	var keys []*fernet.Key
	for i, field := range splitKeys(value, s.DecryptOnlyDerivation.separators()) {
		derived, err := s.DecryptOnlyDerivation.keys(field, salts)
		if err != nil {
			return nil, fmt.Errorf("%s, key %d: %w", from, i+1, err)
		}
		keys = append(keys, derived...)
	}
	return keys, nil
}

// files are the key files configured now: the *_FILE paths, and the dev
// key file when one may be used.
func (s Source) files() []string {
	var files []string
	for _, name := range []string{s.PrimaryVar, s.DecryptOnlyVar, s.SaltVar} {
		if name == "" {
			continue
		}
		if path, ok := s.LookupEnv(name + FileSuffix); ok && path != "" {
			files = append(files, path)
		}
	}
	if s.DevKeyFile != "" {
		files = append(files, s.DevKeyFile)
	}
	return files
}

// read returns the value of name or the content of the file name_FILE
// points to, and says which one it came from. Both set is an error: which
// one wins would be a guess. Values go to fernet.ParseKey as they are, so
// that exactly what Python accepts is accepted.
func (s Source) read(name string, derivation Derivation) (value, from string, err error) {
	fileVar := name + FileSuffix
	direct, hasDirect := s.LookupEnv(name)
	path, hasFile := s.LookupEnv(fileVar)
	hasDirect = hasDirect && !isBlank(direct)
	hasFile = hasFile && path != ""
	switch {
	case hasDirect && hasFile:
		return "", "", fmt.Errorf("both %s and %s are set; set only one", name, fileVar)
	case hasFile:
		from = fmt.Sprintf("%s (%s)", fileVar, path)
		content, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", from, err)
		}
		return derivation.fileValue(string(content)), from, nil
	default:
		return direct, name, nil
	}
}

// splitKeys splits a list of keys on any of separators, dropping blank
// entries (a trailing comma, a blank line).
func splitKeys(list, separators string) []string {
	var keys []string
	for _, field := range strings.FieldsFunc(list, func(r rune) bool { return strings.ContainsRune(separators, r) }) {
		if !isBlank(field) {
			keys = append(keys, field)
		}
	}
	return keys
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }
