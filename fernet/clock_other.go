//go:build !(linux && amd64)

package fernet

import "time"

// unixNow is the current Unix time in whole seconds (see clock_linux_amd64.go).
func unixNow() int64 { return time.Now().Unix() }
