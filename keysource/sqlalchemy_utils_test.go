package keysource

import "testing"

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

func TestSQLAlchemyUtilsKeyMatchesPython(t *testing.T) {
	checkAgainstPython(t, pythonSQLAlchemyUtils, "fernet_engine_key", SQLAlchemyUtilsKey, []string{
		"secretkey1234",
		"a key, with a comma",
		"clé secrète ☃",
		" surrounding spaces ",
		"",
	})
}
