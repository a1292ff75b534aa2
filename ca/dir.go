package ca

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnvDir is the environment variable that overrides the configured CA
// directory (but not the -ca-dir flag).
const EnvDir = "TLSBRIDGE_CA_DIR"

// Dir resolves the CA directory. The first non-empty of these wins:
// flagDir (the -ca-dir flag), $TLSBRIDGE_CA_DIR, configDir (ca.dir in the
// config file, already resolved against the config file's directory by the
// caller), then DefaultDir. The result is cleaned but not made absolute.
func Dir(flagDir, configDir string) (string, error) {
	d, _, err := DirFrom(flagDir, configDir)
	return d, err
}

// DirFrom is Dir, and also says where the directory came from: "-ca-dir",
// "$TLSBRIDGE_CA_DIR", "ca.dir" or "default".
func DirFrom(flagDir, configDir string) (dir, from string, err error) {
	switch {
	case flagDir != "":
		return filepath.Clean(flagDir), "-ca-dir", nil
	case os.Getenv(EnvDir) != "":
		return filepath.Clean(os.Getenv(EnvDir)), "$" + EnvDir, nil
	case configDir != "":
		return filepath.Clean(configDir), "ca.dir", nil
	}
	d, err := DefaultDir()
	return d, "default", err
}

// DefaultDir is the CA directory when nothing names one; DefaultDirHelp
// (dir_<goos>.go) describes it.
func DefaultDir() (string, error) {
	d, err := defaultDir()
	if err != nil {
		return "", fmt.Errorf("find CA directory: %w (set -ca-dir, $%s or ca.dir in the config)", err, EnvDir)
	}
	return d, nil
}
