package main

import "testing"

// sendSIGHUP: there is no SIGHUP on Windows (signal_windows.go).
func sendSIGHUP(t *testing.T) {
	t.Helper()
	t.Skip("no SIGHUP reload on Windows")
}
