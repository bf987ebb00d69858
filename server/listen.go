package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const unixScheme = "unix://"

// Listen opens addr: "host:port" for TCP, or "unix:///path" for a Unix
// socket that only this user may connect to (mode 0600), or, when
// socketGroup names a group, its members too (mode 0660). A stale socket
// left by a crashed run is removed; a live one, or any other kind of file,
// is never touched.
//
// The socket is made in a new private directory beside path and renamed
// into place once its mode and group are set, so no one else can connect
// to it before they are, and nothing follows a link someone else put in a
// shared directory. A directory of the sidecar's own (e.g. /run/fernet,
// mode 0750, shared with the app's group) is still the safe place for it.
func Listen(addr, socketGroup string) (net.Listener, error) {
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
	private, err := os.MkdirTemp(filepath.Dir(path), ".fernet-sidecar-")
	if err != nil {
		return nil, fmt.Errorf("listen on %s: make a private directory for the socket: %w", addr, err)
	}
	defer os.RemoveAll(private)
	made := filepath.Join(private, "socket")
	lis, err := net.Listen("unix", made)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := restrictSocket(made, socketGroup); err != nil {
		lis.Close()
		return nil, err
	}
	if err := os.Rename(made, path); err != nil {
		lis.Close()
		return nil, fmt.Errorf("listen on %s: move the socket into place: %w", addr, err)
	}
	return &unixListener{Listener: lis, path: path}, nil
}

// unixListener removes its socket on Close, from where it was moved to.
type unixListener struct {
	net.Listener
	path string
}

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	if info, statErr := os.Lstat(l.path); statErr == nil && info.Mode().Type() == os.ModeSocket {
		os.Remove(l.path)
	}
	return err
}

// Addr is the socket's path, not the private directory it was made in.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func restrictSocket(path, group string) error {
	if group == "" {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("restrict socket %s to its owner: %w", path, err)
		}
		return nil
	}
	found, err := user.LookupGroup(group)
	if err != nil {
		if found, err = user.LookupGroupId(group); err != nil {
			return fmt.Errorf("socket group %q: no such group name or id", group)
		}
	}
	gid, err := strconv.Atoi(found.Gid)
	if err != nil {
		return fmt.Errorf("socket group %q: gid %q: %w", group, found.Gid, err)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("give socket %s to group %s: %w", path, group, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return fmt.Errorf("restrict socket %s to its owner and group: %w", path, err)
	}
	return nil
}

// IsLoopback reports whether addr can only be reached from this machine:
// a Unix socket, or a loopback host. "" and "0.0.0.0" mean every interface.
func IsLoopback(addr string) bool {
	if strings.HasPrefix(addr, unixScheme) {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
