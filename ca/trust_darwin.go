package ca

import (
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/smallstep/truststore"
)

// macOS: the system store is the System keychain with admin trust
// settings, written by truststore (security add-trusted-cert -d, then the
// trust settings for SSL and basic X.509 that Go and Safari need), and
// checked with the platform verifier that crypto/x509 calls on macOS.

const (
	exeSuffix       = ""
	certutilHelp    = "brew install nss"
	javaHomeExample = "$(/usr/libexec/java_home)"
	systemKeychain  = "/Library/Keychains/System.keychain"
)

var nssUnsupported error

// nssDirs: Firefox profiles. Chromium on macOS reads the keychain.
func nssDirs(home string) []string {
	return []string{filepath.Join(home, "Library", "Application Support", "Firefox", "Profiles", "*")}
}

func isAdmin() bool { return os.Geteuid() == 0 }

// systemEnv holds the calls that touch the keychain, so a test can replace
// them.
type systemEnv struct {
	// verify evaluates the certificate with the system's trust settings.
	verify             func(*x509.Certificate) error
	install, uninstall func(*x509.Certificate) error
}

func osSystemEnv() systemEnv {
	return systemEnv{
		// With no Roots, crypto/x509 asks Security.framework
		// (SecTrustEvaluateWithError) on macOS, which honours the
		// keychains' trust settings: the same answer apps get.
		verify: func(c *x509.Certificate) error {
			_, err := c.Verify(x509.VerifyOptions{})
			return err
		},
		install: func(c *x509.Certificate) error { return truststore.Install(c) },
		uninstall: func(c *x509.Certificate) error {
			// truststore removes the trust settings only
			// (remove-trusted-cert); the certificate itself would stay
			// in the System keychain, untrusted.
			if err := truststore.Uninstall(c); err != nil {
				return err
			}
			sum := sha1.Sum(c.Raw)
			out, err := exec.Command("security", "delete-certificate", "-Z", fmt.Sprintf("%X", sum), systemKeychain).CombinedOutput()
			if err != nil && !strings.Contains(string(out), "Unable to delete") {
				return fmt.Errorf("security delete-certificate: %w: %s", err, firstLine(out))
			}
			return nil
		},
	}
}

type systemStore struct{ e *trustEnv }

func (e *trustEnv) openSystem(_ *x509.Certificate, write bool) (trustStore, error) {
	if write && !e.admin {
		// truststore would run sudo itself and prompt on the terminal,
		// or fail without one; ask for the rights up front instead, as
		// on Linux.
		return nil, fmt.Errorf("writing %s needs root: %w: %w", systemKeychain, ErrNeedsAdmin, ErrStoreUnavailable)
	}
	return &systemStore{e: e}, nil
}

func (st *systemStore) where() string { return systemKeychain }

// trusted reports whether macOS trusts the CA: an untrusted root is an
// UnknownAuthorityError; any other failure (expired) cannot say.
func (st *systemStore) trusted(c *x509.Certificate) (bool, error) {
	err := st.e.sys.verify(c)
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &unknown):
		return false, nil
	}
	return false, fmt.Errorf("macOS trust evaluation: %w", err)
}

func (st *systemStore) add(c *x509.Certificate) error    { return st.e.sys.install(c) }
func (st *systemStore) remove(c *x509.Certificate) error { return st.e.sys.uninstall(c) }

// elsewhere: trust settings live in the login keychain and in
// configuration profiles too.
func (st *systemStore) elsewhere() string {
	return "trust settings for it remain elsewhere, e.g. the login keychain or a configuration profile (Keychain Access, System Settings > Profiles)"
}
