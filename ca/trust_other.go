//go:build !linux && !windows && !darwin

package ca

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
)

// Elsewhere tlsbridge knows no system store; NSS and Java work where their
// tools are.

const (
	exeSuffix       = ""
	certutilHelp    = "install NSS's certutil"
	javaHomeExample = "the JDK's directory"
)

var nssUnsupported error

func nssDirs(home string) []string {
	return []string{filepath.Join(home, ".pki", "nssdb"), filepath.Join(home, ".mozilla", "firefox", "*")}
}

func isAdmin() bool { return os.Geteuid() == 0 }

type systemEnv struct{}

func osSystemEnv() systemEnv { return systemEnv{} }

func (e *trustEnv) openSystem(*x509.Certificate, bool) (trustStore, error) {
	return nil, fmt.Errorf("tlsbridge knows no system store on this OS: %w: %w", ErrNoSystemStore, ErrStoreUnavailable)
}
