package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

const unixScheme = "unix://"

// Listen opens addr: "host:port" for TCP, or "unix:///path" for a Unix
// socket that only this user may connect to (mode 0600). A stale socket
// left by a crashed run is removed; a live one, or any other kind of file,
// is never touched.
func Listen(addr string) (net.Listener, error) {
	path, isUnix := strings.CutPrefix(addr, unixScheme)
	if !isUnix {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return lis, nil
	}
	if path == "" {
		return nil, fmt.Errorf("listen on %q: no socket path after %s", addr, unixScheme)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("restrict socket %s to its owner: %w", path, err)
	}
	return lis, nil
}

func removeStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket path %s: %w", path, err)
	}
	if info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("socket path %s exists and is not a socket; refusing to replace it", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("socket %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}
