package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// plaintextSize is the plaintext of every token: a TOTP secret or a short
// PII field.
const plaintextSize = 32

// workload is what every round sends: the same keys and tokens to the
// sidecar, the echo server and Python.
type workload struct {
	primary, old *fernet.Key
	// plaintext is what token and every batch token hold.
	plaintext []byte
	// token is under the primary key: what Decrypt calls send.
	token string
	// oldTokens are under the old key, each with its own IV: what batch
	// calls send, so that every item is really re-encrypted.
	oldTokens []string

	decryptRequest *fernetv1.DecryptRequest
	batchRequest   *fernetv1.ReEncryptBatchRequest
}

func newWorkload(batchItems int) (*workload, error) {
	primary, err := fernet.GenerateKey()
	if err != nil {
		return nil, err
	}
	old, err := fernet.GenerateKey()
	if err != nil {
		return nil, err
	}
	w := &workload{primary: primary, old: old, plaintext: make([]byte, plaintextSize)}
	if _, err := rand.Read(w.plaintext); err != nil {
		return nil, err
	}
	encrypted, err := fernet.NewKeyring(primary).Encrypt(w.plaintext)
	if err != nil {
		return nil, err
	}
	w.token = encrypted.Token
	underOld := fernet.NewKeyring(old)
	for range batchItems {
		encrypted, err := underOld.Encrypt(w.plaintext)
		if err != nil {
			return nil, err
		}
		w.oldTokens = append(w.oldTokens, encrypted.Token)
	}
	w.decryptRequest = &fernetv1.DecryptRequest{Token: w.token}
	w.batchRequest = &fernetv1.ReEncryptBatchRequest{Tokens: w.oldTokens}
	return w, nil
}

// sidecarEnv is the bench's environment without anything that configures
// the sidecar, plus the two keys.
func (w *workload) sidecarEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FERNET_SIDECAR_") || strings.Contains(name, "DJANGO_ENCRYPTION_KEY") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"DJANGO_ENCRYPTION_KEY="+w.primary.Encode(),
		"OLD_DJANGO_ENCRYPTION_KEY="+w.old.Encode(),
	)
}

// checkDecrypt checks a sidecar's answer to decryptRequest.
func (w *workload) checkDecrypt(resp *fernetv1.DecryptResponse) error {
	if string(resp.GetPlaintext()) != string(w.plaintext) || resp.GetKeyId() != w.primary.ID() {
		return fmt.Errorf("decrypt: wrong answer (key %s)", resp.GetKeyId())
	}
	return nil
}

// checkBatch checks a sidecar's answer to batchRequest: every token moved
// to the primary key and still holding the plaintext.
func (w *workload) checkBatch(resp *fernetv1.ReEncryptBatchResponse) error {
	results := resp.GetResults()
	if len(results) != len(w.oldTokens) {
		return fmt.Errorf("batch: %d results for %d tokens", len(results), len(w.oldTokens))
	}
	ring := fernet.NewKeyring(w.primary)
	for i, r := range results {
		ok := r.GetOk()
		if ok == nil || !ok.GetChanged() {
			return fmt.Errorf("batch item %d: not re-encrypted: %v", i, r.GetError())
		}
		decrypted, err := ring.Decrypt(ok.GetToken())
		if err != nil || string(decrypted.Plaintext) != string(w.plaintext) {
			return fmt.Errorf("batch item %d: the new token does not decrypt under the primary: %v", i, err)
		}
	}
	return nil
}
