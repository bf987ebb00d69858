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
	// ListVar names the variable holding the whole list, one key per line,
	// the primary first and then the decrypt-only keys (FERNET_SIDECAR_KEYS), or
	// ListVar+"_FILE" a file holding it: the order of MultiFernet's list
	// and django-fernet-fields' FERNET_KEYS. One file means one rename
	// changes every key at once. It excludes PrimaryVar and
	// DecryptOnlyVar.
	ListVar string
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
	// FromEnvironment names the variables that held keys themselves,
	// rather than paths to files: any process of the same user can read
	// them in /proc/PID/environ for as long as the process runs.
	FromEnvironment []string
	// Derived holds the ids of the keys derived from secrets (see
	// Derivation).
	Derived map[string]bool
}

// Load reads and parses every configured key. Errors name the variable or
// file that is wrong, never the value.
func (s Source) Load() (Loaded, error) {
	var loaded Loaded
	salts, err := s.loadSalts(&loaded)
	if err != nil {
		return Loaded{}, err
	}
	primary, decryptOnly, err := s.loadKeys(salts, &loaded)
	if err != nil {
		return Loaded{}, err
	}
	if len(primary) == 0 {
		if s.DevKeyFile == "" {
			return Loaded{}, fmt.Errorf("%w: set %s or %s%s (make a key with: fernet-sidecar genkey), or run with --dev for a development key",
				ErrNoPrimaryKey, s.PrimaryVar, s.PrimaryVar, FileSuffix)
		}
		dev, created, err := DevKey(s.DevKeyFile)
		if err != nil {
			return Loaded{}, err
		}
		primary, loaded.DevKey, loaded.DevKeyCreated = []*fernet.Key{dev}, true, created
	}
	// A secret with several salts: the first salt's key encrypts, the
	// others decrypt, before the older secrets' keys.
	loaded.Keyring = fernet.NewKeyring(primary[0], append(primary[1:], decryptOnly...)...)
	return loaded, nil
}

// loadSalts reads SaltVar when a derivation needs salts.
func (s Source) loadSalts(loaded *Loaded) ([]string, error) {
	d := DerivationDjangoFernetEncryptedFields
	if s.PrimaryDerivation != d && s.DecryptOnlyDerivation != d {
		return nil, nil
	}
	value, from, err := s.read(s.SaltVar, d, loaded)
	if err != nil {
		return nil, err
	}
	salts := splitKeys(value, d.separators())
	if len(salts) == 0 {
		return nil, fmt.Errorf("%s: not set, and the %s derivation needs its salts (SALT_KEY, one per line)", from, d)
	}
	return salts, nil
}

// loadKeys reads the primary's keys (the primary first, then any other
// keys its value derives; none when no primary is configured) and the
// decrypt-only keys, from the list or from their two variables, and notes
// in loaded where they came from.
func (s Source) loadKeys(salts []string, loaded *Loaded) (primary, decryptOnly []*fernet.Key, err error) {
	if s.ListVar != "" {
		list, from, err := s.read(s.ListVar, DerivationNone, loaded)
		if err != nil {
			return nil, nil, err
		}
		if !isBlank(list) {
			return s.loadList(list, from, salts, loaded)
		}
	}
	if primary, err = s.loadPrimary(salts, loaded); err != nil {
		return nil, nil, err
	}
	if decryptOnly, err = s.loadDecryptOnly(salts, loaded); err != nil {
		return nil, nil, err
	}
	return primary, decryptOnly, nil
}

// loadList parses the key list: one key (or secret) per line, the primary
// first. It cannot be combined with the two variables.
func (s Source) loadList(list, from string, salts []string, loaded *Loaded) (primary, decryptOnly []*fernet.Key, err error) {
	for _, name := range []string{s.PrimaryVar, s.DecryptOnlyVar} {
		if value, _, err := s.read(name, DerivationNone, &Loaded{}); err != nil || !isBlank(value) {
			return nil, nil, fmt.Errorf("%s holds the whole key list; unset %s and %s%s", from, name, name, FileSuffix)
		}
	}
	for i, line := range splitKeys(list, "\n") {
		derivation := s.DecryptOnlyDerivation
		if i == 0 {
			derivation = s.PrimaryDerivation
		}
		keys, err := derivation.keys(strings.TrimSuffix(line, "\r"), salts)
		if err != nil {
			return nil, nil, fmt.Errorf("%s, line %d: %w", from, i+1, err)
		}
		loaded.noteDerived(derivation, keys)
		if i == 0 {
			primary = keys
		} else {
			decryptOnly = append(decryptOnly, keys...)
		}
	}
	return primary, decryptOnly, nil
}

// loadPrimary returns the primary key first, then any other keys its value
// derives.
func (s Source) loadPrimary(salts []string, loaded *Loaded) ([]*fernet.Key, error) {
	value, from, err := s.read(s.PrimaryVar, s.PrimaryDerivation, loaded)
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
	loaded.noteDerived(s.PrimaryDerivation, keys)
	return keys, nil
}

func (s Source) loadDecryptOnly(salts []string, loaded *Loaded) ([]*fernet.Key, error) {
	value, from, err := s.read(s.DecryptOnlyVar, s.DecryptOnlyDerivation, loaded)
	if err != nil {
		return nil, err
	}
	var keys []*fernet.Key
	for i, field := range splitKeys(value, s.DecryptOnlyDerivation.separators()) {
		derived, err := s.DecryptOnlyDerivation.keys(field, salts)
		if err != nil {
			return nil, fmt.Errorf("%s, key %d: %w", from, i+1, err)
		}
		loaded.noteDerived(s.DecryptOnlyDerivation, derived)
		keys = append(keys, derived...)
	}
	return keys, nil
}

func (l *Loaded) noteDerived(derivation Derivation, keys []*fernet.Key) {
	if !derivation.derived() {
		return
	}
	if l.Derived == nil {
		l.Derived = map[string]bool{}
	}
	for _, key := range keys {
		l.Derived[key.ID()] = true
	}
}

// files are the key files configured now: the *_FILE paths, and the dev
// key file when one may be used.
func (s Source) files() []string {
	var files []string
	for _, name := range []string{s.PrimaryVar, s.DecryptOnlyVar, s.ListVar, s.SaltVar} {
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
// points to, and says which one it came from; a value given in name itself
// is noted in loaded. Both set is an error: which one wins would be a
// guess. Values go to fernet.ParseKey as they are, so that exactly what
// Python accepts is accepted.
func (s Source) read(name string, derivation Derivation, loaded *Loaded) (value, from string, err error) {
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
	case hasDirect:
		loaded.FromEnvironment = append(loaded.FromEnvironment, name)
		return direct, name, nil
	default:
		return "", name, nil
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
