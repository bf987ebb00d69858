package keysource

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// pythonDerivation is django-fernet-fields' hkdf.py, run with Debian's
// python3-cryptography: for each secret it prints the derived key, a token
// it made with it, and what it decrypts the Go-made token to.
const pythonDerivation = `
import base64, json, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

def derive_fernet_key(input_key):
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32,
                salt=b"django-fernet-fields-hkdf-salt", info=b"django-fernet-fields")
    return base64.urlsafe_b64encode(hkdf.derive(input_key.encode("utf-8")))

out = []
for case in json.load(sys.stdin):
    f = Fernet(derive_fernet_key(case["secret"]))
    out.append({
        "key": derive_fernet_key(case["secret"]).decode(),
        "token": f.encrypt(b"from python").decode(),
        "go_plaintext": f.decrypt(case["go_token"].encode()).decode(),
    })
json.dump(out, sys.stdout)
`

func TestDjangoFernetFieldsKeyMatchesPython(t *testing.T) {
	python := testenv.LookPath(t, "/usr/bin/python3")
	secrets := []string{
		"django-insecure-3x%k!h@7(q_w=+v^z#o2$1m&b8*e)u-y0r9c6t5s4a",
		"a secret, with a comma",
		"clé secrète ☃",
		" surrounding spaces ",
	}
	type request struct {
		Secret  string `json:"secret"`
		GoToken string `json:"go_token"`
	}
	var requests []request
	for _, secret := range secrets {
		key, err := DjangoFernetFieldsKey(secret)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := fernet.NewKeyring(key).Encrypt([]byte("from go"))
		if err != nil {
			t.Fatal(err)
		}
		requests = append(requests, request{Secret: secret, GoToken: sealed.Token})
	}
	input, _ := json.Marshal(requests)
	cmd := exec.Command(python, "-c", pythonDerivation)
	cmd.Stdin = strings.NewReader(string(input))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		testenv.Missing(t, "python3-cryptography for "+python+": "+err.Error())
	}
	var answers []struct {
		Key         string `json:"key"`
		Token       string `json:"token"`
		GoPlaintext string `json:"go_plaintext"`
	}
	if err := json.Unmarshal(out, &answers); err != nil || len(answers) != len(secrets) {
		t.Fatalf("python answered %q (%v)", out, err)
	}
	for i, secret := range secrets {
		key, _ := DjangoFernetFieldsKey(secret)
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

func TestLoadWithDjangoFernetFieldsDerivation(t *testing.T) {
	newSecret, oldSecret, olderSecret := "new, with a comma", "old secret", " older "
	derived := func(secret string) string {
		key, err := DjangoFernetFieldsKey(secret)
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
		t.Run(tt.name, func(t *testing.T) {
			src := source(tt.env)
			src.PrimaryDerivation = DerivationDjangoFernetFields
			src.DecryptOnlyDerivation = DerivationDjangoFernetFields
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

// TestMovingOffDerivedKeys: a plain Fernet key as primary, while the data
// django-fernet-fields wrote is still read with the key derived from the
// old SECRET_KEY.
func TestMovingOffDerivedKeys(t *testing.T) {
	plain := newKey(t)
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
	for _, name := range []string{"none", "django-fernet-fields"} {
		if _, err := ParseDerivation(name); err != nil {
			t.Errorf("ParseDerivation(%q): %v", name, err)
		}
	}
	if _, err := ParseDerivation("hkdf"); err == nil || !strings.Contains(err.Error(), "django-fernet-fields") {
		t.Errorf("an unknown derivation must be refused with the valid names, got %v", err)
	}
}
