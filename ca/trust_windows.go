package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Windows: the system store is the machine's ROOT store, or the current
// user's when the process is not elevated (trust_rootstore.go), through
// crypt32. NSS's certutil does not exist here; Java does.

const (
	exeSuffix       = ".exe"
	certutilHelp    = ""
	javaHomeExample = `C:\Program Files\Eclipse Adoptium\jdk-17.0.13.11-hotspot`
)

// nssUnsupported: Windows has a certutil.exe of its own, with other flags,
// so running "certutil" here would be wrong.
var nssUnsupported = errors.New("NSS's certutil does not exist on Windows (certutil.exe is another tool); Firefox reads the Windows ROOT store (the system store) when security.enterprise_roots.enabled is true in about:config")

func nssDirs(home string) []string {
	return []string{filepath.Join(home, "AppData", "Roaming", "Mozilla", "Firefox", "Profiles", "*")}
}

// isAdmin reports whether the process token is elevated (UAC): only then
// can it change the machine's ROOT store.
func isAdmin() bool { return windows.GetCurrentProcessToken().IsElevated() }

type systemEnv struct{ api rootStoreAPI }

func osSystemEnv() systemEnv { return systemEnv{api: crypt32{}} }

func (e *trustEnv) openSystem(c *x509.Certificate, write bool) (trustStore, error) {
	return openRootStore(e.sys.api, e.admin, c, write)
}

// crypt32 is rootStoreAPI over the Windows certificate store functions.
type crypt32 struct{}

// open opens l's ROOT store; for reading, a store that does not exist yet
// (a fresh profile) is ErrNotExist, which callers take as empty.
func (crypt32) open(l rootLocation, write bool) (windows.Handle, error) {
	flags := uint32(windows.CERT_SYSTEM_STORE_CURRENT_USER)
	if l == rootMachine {
		flags = windows.CERT_SYSTEM_STORE_LOCAL_MACHINE
	}
	if !write {
		// Read-only opens of the machine's store need no elevation, and
		// must not create a store.
		flags |= windows.CERT_STORE_READONLY_FLAG | windows.CERT_STORE_OPEN_EXISTING_FLAG
	}
	name, err := windows.UTF16PtrFromString("ROOT")
	if err != nil {
		return 0, err
	}
	// Reads see the logical store, everything Windows trusts through it
	// (Group Policy and enterprise copies too); writes go to its registry
	// part, where an added certificate lives. Deleting through the logical
	// store leaves the registry copy behind under Wine 8.
	provider := uintptr(windows.CERT_STORE_PROV_SYSTEM_W)
	if write {
		provider = windows.CERT_STORE_PROV_SYSTEM_REGISTRY_W
	}
	h, err := windows.CertOpenStore(provider, 0, 0, flags, uintptr(unsafe.Pointer(name)))
	if err != nil {
		if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
			err = fmt.Errorf("%w: %w", err, fs.ErrNotExist)
		}
		return 0, fmt.Errorf("open %s: %w", l, err)
	}
	return h, nil
}

// each calls fn with every certificate in the store until fn returns
// false.
func (crypt32) each(h windows.Handle, fn func(ctx *windows.CertContext, der []byte) bool) error {
	var ctx *windows.CertContext
	for {
		next, err := windows.CertEnumCertificatesInStore(h, ctx)
		if next == nil {
			if errors.Is(err, syscall.Errno(windows.CRYPT_E_NOT_FOUND)) {
				return nil // the end of the store
			}
			return fmt.Errorf("enumerate certificates: %w", err)
		}
		ctx = next
		if !fn(ctx, unsafe.Slice(ctx.EncodedCert, ctx.Length)) {
			// Enumeration frees each context it moves past; one left
			// early is ours to free.
			_ = windows.CertFreeCertificateContext(ctx)
			return nil
		}
	}
}

func (a crypt32) has(l rootLocation, der []byte) (bool, error) {
	h, err := a.open(l, false)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // no such store yet: the CA is not in it
	}
	if err != nil {
		return false, err
	}
	defer windows.CertCloseStore(h, 0)
	found := false
	err = a.each(h, func(_ *windows.CertContext, b []byte) bool {
		found = bytes.Equal(b, der)
		return !found
	})
	return found, err
}

func (a crypt32) add(l rootLocation, der []byte) error {
	h, err := a.open(l, true)
	if err != nil {
		return err
	}
	defer windows.CertCloseStore(h, 0)
	// In the current user's store, Windows asks the user to confirm in a
	// dialog; declining fails the call (ERROR_CANCELLED).
	ctx, err := windows.CertCreateCertificateContext(windows.X509_ASN_ENCODING|windows.PKCS_7_ASN_ENCODING, &der[0], uint32(len(der)))
	if err != nil {
		return fmt.Errorf("parse the CA for %s: %w", l, err)
	}
	defer windows.CertFreeCertificateContext(ctx)
	if err := windows.CertAddCertificateContextToStore(h, ctx, windows.CERT_STORE_ADD_USE_EXISTING, nil); err != nil {
		return fmt.Errorf("add to %s: %w", l, err)
	}
	return nil
}

// remove deletes every copy of der from l. Each pass enumerates from the
// start and deletes the first copy it finds, rather than deleting while
// enumerating: Wine's crypt32 then returns the deleted certificate again
// and again (seen under Wine 8), and Windows documents the pattern only
// with a duplicated context.
func (a crypt32) remove(l rootLocation, der []byte) error {
	h, err := a.open(l, true)
	if err != nil {
		return err
	}
	defer windows.CertCloseStore(h, 0)
	// A store holds one copy; the bound guards against a store that keeps
	// answering with one it has deleted.
	for range 16 {
		var found *windows.CertContext
		err := a.each(h, func(ctx *windows.CertContext, b []byte) bool {
			if bytes.Equal(b, der) {
				found = windows.CertDuplicateCertificateContext(ctx)
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		if found == nil {
			return nil
		}
		// Deleting frees the context it is given.
		if err := windows.CertDeleteCertificateFromStore(found); err != nil {
			return fmt.Errorf("delete from %s: %w", l, err)
		}
	}
	return fmt.Errorf("delete from %s: the certificate is still listed after 16 deletions", l)
}
