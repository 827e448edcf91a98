//go:build !linux

package main

// harden does nothing where no hardening is implemented.
func harden() {}
