package server

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// TestCallsDuringKeySwapsSeeOneKeySet swaps the keys while callers run, and
// checks that no call mixes two key sets. Key set i has key i as primary
// and every earlier key as decrypt-only, so every token stays decryptable.
func TestCallsDuringKeySwapsSeeOneKeySet(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	const sets = 50
	keys := []*fernet.Key{ts.primary}
	validStatus := map[string]bool{statusKey(ts.keys.Keyring()): true}
	var keyrings []*fernet.Keyring
	for range sets {
		keys = append(keys, testkeys.New(t))
		older := slices.Clone(keys[:len(keys)-1])
		slices.Reverse(older)
		keyring := fernet.NewKeyring(keys[len(keys)-1], older...)
		keyrings = append(keyrings, keyring)
		validStatus[statusKey(keyring)] = true
	}

	stop := make(chan struct{})
	var callers sync.WaitGroup
	errs := make(chan error, 64)
	for caller := range 8 {
		callers.Add(1)
		go func() {
			defer callers.Done()
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := oneRound(ts, fmt.Sprintf("caller %d round %d", caller, i), validStatus); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, keyring := range keyrings {
		time.Sleep(2 * time.Millisecond)
		ts.keys.Store(keyring)
		ts.ObserveKeyReload(keyring, nil)
	}
	close(stop)
	callers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := ts.metric(t, "fernet_key_info", "key_id", keys[sets].ID(), "role", "primary"); got != 1 {
		t.Fatalf("fernet_key_info does not follow the last swap")
	}
}

func oneRound(ts *testServer, name string, validStatus map[string]bool) error {
	c, cancel := contextWithTimeout()
	defer cancel()
	plaintexts := slices.Repeat([][]byte{[]byte(name)}, 16)
	batch, err := ts.client.EncryptBatch(c, &fernetv1.EncryptBatchRequest{Plaintexts: plaintexts})
	if err != nil {
		return fmt.Errorf("%s: EncryptBatch: %v", name, err)
	}
	first := batch.GetResults()[0].GetOk().GetKeyId()
	for _, result := range batch.GetResults() {
		if result.GetOk().GetKeyId() != first {
			return fmt.Errorf("%s: one batch encrypted under two keys", name)
		}
		resp, err := ts.client.Decrypt(c, &fernetv1.DecryptRequest{Token: result.GetOk().GetToken()})
		if err != nil || string(resp.GetPlaintext()) != name {
			return fmt.Errorf("%s: a token made during a swap does not decrypt: %v", name, err)
		}
	}
	status, err := ts.client.GetStatus(c, &fernetv1.GetStatusRequest{})
	if err != nil {
		return fmt.Errorf("%s: GetStatus: %v", name, err)
	}
	if key := fmt.Sprint(status.GetPrimaryKeyId(), status.GetDecryptOnlyKeyIds()); !validStatus[key] {
		return fmt.Errorf("%s: GetStatus shows a key set that was never loaded: %s", name, key)
	}
	return nil
}

func statusKey(keyring *fernet.Keyring) string {
	var ids []string
	for _, key := range keyring.DecryptOnly() {
		ids = append(ids, key.ID())
	}
	return fmt.Sprint(keyring.Primary().ID(), ids)
}
