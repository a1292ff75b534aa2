package ca

import (
	"crypto/x509"
	"errors"
	"testing"
)

// emptySystemEnv is a keychain that says the CA is untrusted and must not
// be changed.
func emptySystemEnv() systemEnv {
	untouched := func(*x509.Certificate) error { return errors.New("system store must not be touched") }
	return systemEnv{
		verify:    func(c *x509.Certificate) error { return x509.UnknownAuthorityError{Cert: c} },
		install:   untouched,
		uninstall: untouched,
	}
}

func systemSkipTests(*testing.T) []skipTest {
	return []skipTest{{"system/not-root", StoreSystem, nil, "needs root", ErrNeedsAdmin}}
}
