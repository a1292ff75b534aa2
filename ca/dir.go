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
// caller), $XDG_DATA_HOME/tlsbridge, ~/.local/share/tlsbridge.
//
// Like the XDG Base Directory spec says, a relative $XDG_DATA_HOME is
// ignored. The result is cleaned but not made absolute.
func Dir(flagDir, configDir string) (string, error) {
	if flagDir != "" {
		return filepath.Clean(flagDir), nil
	}
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Clean(d), nil
	}
	if configDir != "" {
		return filepath.Clean(configDir), nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tlsbridge"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find CA directory: %w (set -ca-dir, $%s or ca.dir in the config)", err, EnvDir)
	}
	return filepath.Join(home, ".local", "share", "tlsbridge"), nil
}
