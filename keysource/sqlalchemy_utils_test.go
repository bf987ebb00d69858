package keysource

import "testing"

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
	checkAgainstPython(t, pythonSQLAlchemyUtils, SQLAlchemyUtilsKey, []string{
		"secretkey1234",
		"a key, with a comma",
		"clé secrète ☃",
		" surrounding spaces ",
		"",
	})
}
