package ca

import (
	"os"
	"path/filepath"
)

// DefaultDirHelp describes DefaultDir on this OS.
const DefaultDirHelp = "~/Library/Application Support/tlsbridge"

// defaultDir is where macOS apps keep their own data
// (os.UserConfigDir's answer, which is the same directory).
func defaultDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "Application Support", "tlsbridge"), nil
}
