//go:build !windows

package main

// asAdmin is how a person runs command with the rights a machine-wide
// trust store needs.
func asAdmin(command string) string { return "sudo " + command }
