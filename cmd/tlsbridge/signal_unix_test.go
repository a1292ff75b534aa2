//go:build !windows

package main

import (
	"os"
	"syscall"
	"testing"
)

// sendSIGHUP asks this process to reload, as systemctl reload does.
func sendSIGHUP(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}
