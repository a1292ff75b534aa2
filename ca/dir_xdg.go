//go:build !windows && !darwin

package ca

import (
	"os"
	"path/filepath"
)

// DefaultDirHelp describes DefaultDir on this OS.
const DefaultDirHelp = "$XDG_DATA_HOME/tlsbridge, else ~/.local/share/tlsbridge"

// defaultDir follows the XDG Base Directory spec, which also says to
// ignore a relative $XDG_DATA_HOME. The systemd unit sets XDG_DATA_HOME to
// its state directory.
func defaultDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tlsbridge"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "share", "tlsbridge"), nil
}
