package ca

import (
	"errors"
	"os"
	"path/filepath"
)

// DefaultDirHelp describes DefaultDir on this OS.
const DefaultDirHelp = `%ProgramData%\tlsbridge`

// defaultDir is machine-wide, not per user: on Windows tlsbridge mostly
// runs as a service beside the legacy app, and the service and the
// administrator who runs "tlsbridge ca install" must find the same CA.
// Save gives the directory an ACL that keeps other users out
// (perm_windows.go), because %ProgramData% lets every user read.
func defaultDir() (string, error) {
	d := os.Getenv("ProgramData")
	if d == "" {
		return "", errors.New("%ProgramData% is not set")
	}
	return filepath.Join(d, "tlsbridge"), nil
}
