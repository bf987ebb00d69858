package keysource

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// DevKey reads the development key from path, or makes one there (mode
// 0600) when the file does not exist, so that data written in development
// stays readable across restarts. created says which.
//
// An existing file is used only if it is a regular file (not a link to
// one) owned by this user and readable by no one else: otherwise someone
// else chose, or can read, the key this process would encrypt with.
func DevKey(path string) (key *fernet.Key, created bool, err error) {
	// O_NONBLOCK: a FIFO put in its place must not hang the start.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
		defer f.Close()
		key, err := readPrivateKeyFile(f)
		if err != nil {
			return nil, false, fmt.Errorf("development key file %s: %w", path, err)
		}
		return key, false, nil
	case errors.Is(err, syscall.ELOOP):
		return nil, false, fmt.Errorf("development key file %s is a symbolic link; refusing to follow it (remove it, or pass another --dev-key-file)", path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("development key file %s: %w", path, err)
	}
	key, err = fernet.GenerateKey()
	if err != nil {
		return nil, false, err
	}
	// O_EXCL: if another process made the file meanwhile, fail rather than
	// overwrite the key its data is under; it also never follows a link.
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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

// readPrivateKeyFile reads a key from f once f is shown to be a regular
// file of this user's that no one else may read or write.
func readPrivateKeyFile(f *os.File) (*fernet.Key, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("is not a regular file (%v); refusing to use it", info.Mode().Type())
	}
	if owner := info.Sys().(*syscall.Stat_t).Uid; int(owner) != os.Getuid() {
		return nil, fmt.Errorf("is owned by uid %d, not by this user (uid %d); refusing to use a key someone else chose", owner, os.Getuid())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("has mode %04o: others may read or change it; refusing to use it (chmod 600 it, or delete it for a new key)", perm)
	}
	content, err := io.ReadAll(io.LimitReader(f, 1<<10))
	if err != nil {
		return nil, err
	}
	return fernet.ParseKey(string(content))
}
