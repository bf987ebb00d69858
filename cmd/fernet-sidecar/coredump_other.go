//go:build !linux

package main

// forbidCoreDumps has no portable form outside Linux; the image is Linux.
func forbidCoreDumps() error { return nil }
