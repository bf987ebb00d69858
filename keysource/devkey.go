package keysource

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// DevKey reads the development key from path, or makes one there (mode
// 0600) when the file does not exist, so that data written in development
// stays readable across restarts. created says which.
func DevKey(path string) (key *fernet.Key, created bool, err error) {
	content, err := os.ReadFile(path)
	if err == nil {
		key, err := fernet.ParseKey(string(content))
		if err != nil {
			return nil, false, fmt.Errorf("development key file %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("development key file %s: %w", path, err)
	}
	key, err = fernet.GenerateKey()
	if err != nil {
		return nil, false, err
	}
	// O_EXCL: if another process made the file meanwhile, fail rather than
	// overwrite the key its data is under.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create development key file: %w", err)
	}
	if _, err := fmt.Fprintln(f, key.Encode()); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write development key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write development key file %s: %w", path, err)
	}
	return key, true, nil
}
