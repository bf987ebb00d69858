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

// pythonSQLAlchemyUtils is what sqlalchemy-utils' StringEncryptedType does
// with FernetEngine (EncryptionDecryptionBaseEngine._update_key, then
// FernetEngine._initialize_engine), run with Debian's python3-cryptography:
// for each configured key it prints the Fernet key, a token it made, and
// what it decrypts the Go-made token to.
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

out = []
for case in json.load(sys.stdin):
    f = Fernet(fernet_engine_key(case["secret"]))
    out.append({
        "key": fernet_engine_key(case["secret"]).decode(),
        "token": f.encrypt(b"from python").decode(),
        "go_plaintext": f.decrypt(case["go_token"].encode()).decode(),
    })
json.dump(out, sys.stdout)
`

func TestSQLAlchemyUtilsKeyMatchesPython(t *testing.T) {
	python := testenv.LookPath(t, "/usr/bin/python3")
	secrets := []string{
		"secretkey1234",
		"a key, with a comma",
		"clé secrète ☃",
		" surrounding spaces ",
		"",
	}
	type request struct {
		Secret  string `json:"secret"`
		GoToken string `json:"go_token"`
	}
	var requests []request
	for _, secret := range secrets {
		key, err := SQLAlchemyUtilsKey(secret)
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
	cmd := exec.Command(python, "-c", pythonSQLAlchemyUtils)
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
	for i := range secrets {
		key, _ := SQLAlchemyUtilsKey(secrets[i])
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

func TestLoadWithSQLAlchemyUtilsDerivation(t *testing.T) {
	newSecret, oldSecret := "new key, with a comma", "old key"
	derived := func(secret string) string {
		key, err := SQLAlchemyUtilsKey(secret)
		if err != nil {
			t.Fatal(err)
		}
		return key.ID()
	}
	if d, err := ParseDerivation("sqlalchemy-utils"); err != nil || d != DerivationSQLAlchemyUtils {
		t.Fatalf("ParseDerivation(sqlalchemy-utils) = %q, %v", d, err)
	}
	src := source(map[string]string{
		"DJANGO_ENCRYPTION_KEY_FILE":     writeFile(t, newSecret+"\n"),
		"OLD_DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, oldSecret+"\r\n"),
	})
	src.PrimaryDerivation = DerivationSQLAlchemyUtils
	src.DecryptOnlyDerivation = DerivationSQLAlchemyUtils
	loaded, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	got := append([]string{loaded.Keyring.Primary().ID()}, ids(loaded.Keyring.DecryptOnly())...)
	want := []string{derived(newSecret), derived(oldSecret)}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("key ids = %v, want %v (new, old)", got, want)
	}
}
