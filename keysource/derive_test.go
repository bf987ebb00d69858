package keysource

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// pythonDjangoFernetFields is django-fernet-fields' hkdf.py, whose
// derive_fernet_key checkAgainstPython runs with Debian's
// python3-cryptography.
const pythonDjangoFernetFields = `
import base64, json, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

def derive_fernet_key(input_key):
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32,
                salt=b"django-fernet-fields-hkdf-salt", info=b"django-fernet-fields")
    return base64.urlsafe_b64encode(hkdf.derive(input_key.encode("utf-8")))
`

// pythonSQLAlchemyUtils is what sqlalchemy-utils' StringEncryptedType does
// with FernetEngine (EncryptionDecryptionBaseEngine._update_key, then
// FernetEngine._initialize_engine), whose fernet_engine_key
// checkAgainstPython runs with Debian's python3-cryptography.
const pythonSQLAlchemyUtils = `
import base64, json, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import hashes

def fernet_engine_key(key):
    if isinstance(key, str):
        key = key.encode()
    digest = hashes.Hash(hashes.SHA256(), backend=default_backend())
    digest.update(key)
    return base64.urlsafe_b64encode(digest.finalize())
`

// TestDerivedKeysMatchPython holds each derivation to the Python code of
// the library whose keys it makes.
func TestDerivedKeysMatchPython(t *testing.T) {
	for _, tt := range []struct {
		name, script, pyDerive string
		derive                 func(string) (*fernet.Key, error)
		secrets                []string
	}{
		{"django-fernet-fields", pythonDjangoFernetFields, "derive_fernet_key", DjangoFernetFieldsKey, []string{
			"django-insecure-3x%k!h@7(q_w=+v^z#o2$1m&b8*e)u-y0r9c6t5s4a",
			"a secret, with a comma",
			"clé secrète ☃",
			" surrounding spaces ",
		}},
		{"sqlalchemy-utils", pythonSQLAlchemyUtils, "fernet_engine_key", SQLAlchemyUtilsKey, []string{
			"secretkey1234",
			"a key, with a comma",
			"clé secrète ☃",
			" surrounding spaces ",
			"",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { checkAgainstPython(t, tt.script, tt.pyDerive, tt.derive, tt.secrets) })
	}
}

// pythonCheckKeys ends every checkAgainstPython script: DERIVE is the
// script's function from a secret to a Fernet key.
const pythonCheckKeys = `
out = []
for case in json.load(sys.stdin):
    key = DERIVE(case["secret"])
    f = Fernet(key)
    out.append({
        "key": key.decode(),
        "token": f.encrypt(b"from python").decode(),
        "go_plaintext": f.decrypt(case["go_token"].encode()).decode(),
    })
json.dump(out, sys.stdout)
`

// checkAgainstPython holds derive to the Python function pyDerive of
// script: for each secret, Python prints the key it derives, a token it
// made with it, and what it decrypts the Go-made token to.
func checkAgainstPython(t *testing.T, script, pyDerive string, derive func(string) (*fernet.Key, error), secrets []string) {
	t.Helper()
	python := testenv.Python(t, []string{"cryptography"}, "python3-cryptography")
	type request struct {
		Secret  string `json:"secret"`
		GoToken string `json:"go_token"`
	}
	var requests []request
	keys := make([]*fernet.Key, len(secrets))
	for i, secret := range secrets {
		key, err := derive(secret)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = key
		sealed, err := fernet.NewKeyring(key).Encrypt([]byte("from go"))
		if err != nil {
			t.Fatal(err)
		}
		requests = append(requests, request{Secret: secret, GoToken: sealed.Token})
	}
	input, _ := json.Marshal(requests)
	out := testenv.RunPython(t, python, script+strings.ReplaceAll(pythonCheckKeys, "DERIVE", pyDerive), input)
	var answers []struct {
		Key         string `json:"key"`
		Token       string `json:"token"`
		GoPlaintext string `json:"go_plaintext"`
	}
	if err := json.Unmarshal(out, &answers); err != nil || len(answers) != len(secrets) {
		t.Fatalf("python answered %q (%v)", out, err)
	}
	for i, key := range keys {
		if key.Encode() != answers[i].Key {
			t.Errorf("secret %d: Go derives a different key from Python", i)
		}
		if answers[i].GoPlaintext != "from go" {
			t.Errorf("secret %d: Python decrypts the Go token to %q", i, answers[i].GoPlaintext)
		}
		opened, err := fernet.NewKeyring(key).Decrypt(answers[i].Token)
		if err != nil || string(opened.Plaintext) != "from python" {
			t.Errorf("secret %d: the Python token opens to %q, %v", i, opened.Plaintext, err)
		}
	}
}

// TestLoadWithDerivedKeys: secrets byte for byte from variables and files,
// the decrypt-only ones one per line, for each derivation of one key per
// secret.
func TestLoadWithDerivedKeys(t *testing.T) {
	newSecret, oldSecret, olderSecret := "new, with a comma", "old secret", " older "
	for _, derivation := range []struct {
		name   Derivation
		derive func(string) (*fernet.Key, error)
	}{
		{DerivationDjangoFernetFields, DjangoFernetFieldsKey},
		{DerivationSQLAlchemyUtils, SQLAlchemyUtilsKey},
	} {
		derived := func(secret string) string {
			key, err := derivation.derive(secret)
			if err != nil {
				t.Fatal(err)
			}
			return key.ID()
		}
		tests := []struct {
			name string
			env  map[string]string
		}{
			{"variables, secrets byte for byte", map[string]string{
				"DJANGO_ENCRYPTION_KEY":     newSecret,
				"OLD_DJANGO_ENCRYPTION_KEY": oldSecret + "\n" + olderSecret,
			}},
			{"files, their final line break dropped", map[string]string{
				"DJANGO_ENCRYPTION_KEY_FILE":     writeFile(t, newSecret+"\n"),
				"OLD_DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, oldSecret+"\n"+olderSecret+"\r\n"),
			}},
		}
		for _, tt := range tests {
			t.Run(string(derivation.name)+"/"+tt.name, func(t *testing.T) {
				src := source(tt.env)
				src.PrimaryDerivation = derivation.name
				src.DecryptOnlyDerivation = derivation.name
				loaded, err := src.Load()
				if err != nil {
					t.Fatal(err)
				}
				got := append([]string{loaded.Keyring.Primary().ID()}, ids(loaded.Keyring.DecryptOnly())...)
				want := []string{derived(newSecret), derived(oldSecret), derived(olderSecret)}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("key ids = %v, want %v (new, old, older)", got, want)
				}
			})
		}
	}
}

// TestMovingOffDerivedKeys: a plain Fernet key as primary, while the data
// django-fernet-fields wrote is still read with the key derived from the
// old SECRET_KEY.
func TestMovingOffDerivedKeys(t *testing.T) {
	plain := testkeys.New(t)
	derivedOld, err := DjangoFernetFieldsKey("old django secret")
	if err != nil {
		t.Fatal(err)
	}
	src := source(map[string]string{
		"DJANGO_ENCRYPTION_KEY":     plain.Encode(),
		"OLD_DJANGO_ENCRYPTION_KEY": "old django secret",
	})
	src.DecryptOnlyDerivation = DerivationDjangoFernetFields
	loaded, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(loaded.Keyring.DecryptOnly()); loaded.Keyring.Primary().ID() != plain.ID() || len(got) != 1 || got[0] != derivedOld.ID() {
		t.Fatalf("keys = %s %v, want plain %s then derived %s", loaded.Keyring.Primary().ID(), got, plain.ID(), derivedOld.ID())
	}
}

func TestParseDerivation(t *testing.T) {
	for _, name := range []string{"none", "django-fernet-fields", "django-fernet-encrypted-fields", "sqlalchemy-utils"} {
		if _, err := ParseDerivation(name); err != nil {
			t.Errorf("ParseDerivation(%q): %v", name, err)
		}
	}
	if _, err := ParseDerivation("hkdf"); err == nil || !strings.Contains(err.Error(), "django-fernet-fields") {
		t.Errorf("an unknown derivation must be refused with the valid names, got %v", err)
	}
}

// pythonEncryptedFieldsKeys is django-fernet-encrypted-fields' keys
// property (encrypted_fields/fields.py), run with Debian's
// python3-cryptography on the settings it is given: it prints the keys in
// the library's order, a token under the first (what the library writes),
// one under the last, and what it decrypts the Go-made token to.
const pythonEncryptedFieldsKeys = `
import base64, json, sys
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

settings = json.load(sys.stdin)
keys = []
salt_keys = settings["SALT_KEY"] if isinstance(settings["SALT_KEY"], list) else [settings["SALT_KEY"]]
secret_keys = [settings["SECRET_KEY"]] + settings.get("SECRET_KEY_FALLBACKS", [])
for secret_key in secret_keys:
    for salt_key in salt_keys:
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=bytes(salt_key, "utf-8"), iterations=100_000)
        keys.append(base64.urlsafe_b64encode(kdf.derive(secret_key.encode("utf-8"))))
f = MultiFernet([Fernet(k) for k in keys])
json.dump({
    "keys": [k.decode() for k in keys],
    "first_token": f.encrypt(b"written by the library").decode(),
    "last_token": Fernet(keys[-1]).encrypt(b"under the oldest secret and salt").decode(),
    "go_plaintext": f.decrypt(settings["go_token"].encode()).decode(),
}, sys.stdout)
`

func TestDjangoFernetEncryptedFieldsKeysMatchPython(t *testing.T) {
	python := testenv.Python(t, []string{"cryptography"}, "python3-cryptography")
	secret := "django-insecure-3x%k!h@7(q_w=+v^z#o2$1m&b8*e)u-y0r9c6t5s4a"
	fallbacks := []string{"an older secret, with a comma", "clé ☃"}
	salts := []string{"zyxwvutsrqponmlkjihgfedcba9876543210", "0123456789abcdefghijklmnopqrstuvwxyz"}
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"variables", map[string]string{
			"DJANGO_ENCRYPTION_KEY":     secret,
			"OLD_DJANGO_ENCRYPTION_KEY": strings.Join(fallbacks, "\n"),
			"SALT_KEY":                  strings.Join(salts, "\n"),
		}},
		{"files", map[string]string{
			"DJANGO_ENCRYPTION_KEY_FILE":     writeFile(t, secret+"\n"),
			"OLD_DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, strings.Join(fallbacks, "\n")+"\n"),
			"SALT_KEY_FILE":                  writeFile(t, strings.Join(salts, "\n")+"\n"),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := source(tt.env)
			src.SaltVar = "SALT_KEY"
			src.PrimaryDerivation = DerivationDjangoFernetEncryptedFields
			src.DecryptOnlyDerivation = DerivationDjangoFernetEncryptedFields
			loaded, err := src.Load()
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := loaded.Keyring.Encrypt([]byte("from go"))
			if err != nil {
				t.Fatal(err)
			}
			input, _ := json.Marshal(map[string]any{"SECRET_KEY": secret, "SECRET_KEY_FALLBACKS": fallbacks, "SALT_KEY": salts, "go_token": sealed.Token})
			out := testenv.RunPython(t, python, pythonEncryptedFieldsKeys, input)
			var answer struct {
				Keys        []string `json:"keys"`
				FirstToken  string   `json:"first_token"`
				LastToken   string   `json:"last_token"`
				GoPlaintext string   `json:"go_plaintext"`
			}
			if err := json.Unmarshal(out, &answer); err != nil {
				t.Fatalf("python answered %q: %v", out, err)
			}
			var got []string
			for _, key := range append([]*fernet.Key{loaded.Keyring.Primary()}, loaded.Keyring.DecryptOnly()...) {
				got = append(got, key.Encode())
			}
			if strings.Join(got, ",") != strings.Join(answer.Keys, ",") {
				t.Fatalf("Go derives %d keys that differ from Python's %d, or come in another order", len(got), len(answer.Keys))
			}
			if answer.GoPlaintext != "from go" {
				t.Errorf("Python decrypts the Go token to %q", answer.GoPlaintext)
			}
			for name, token := range map[string]string{"first": answer.FirstToken, "last": answer.LastToken} {
				opened, err := loaded.Keyring.Decrypt(token)
				if err != nil {
					t.Errorf("the Python token under the %s key: %v", name, err)
				} else if opened.Primary != (name == "first") {
					t.Errorf("the Python token under the %s key: Primary = %v", name, opened.Primary)
				}
			}
		})
	}
}

func TestDjangoFernetEncryptedFieldsNeedsSalts(t *testing.T) {
	src := source(map[string]string{"DJANGO_ENCRYPTION_KEY": "secret"})
	src.SaltVar = "SALT_KEY"
	src.PrimaryDerivation = DerivationDjangoFernetEncryptedFields
	if _, err := src.Load(); err == nil || !strings.Contains(err.Error(), "SALT_KEY") {
		t.Fatalf("Load with no salts: %v, want an error naming SALT_KEY", err)
	}
}
