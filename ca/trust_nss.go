package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/smallstep/truststore"
)

// nssStore is every NSS database of the user. truststore's own NSS trust
// finds the databases once, at package init, from $HOME, and ignores a
// certutil failure in any one of them; this one is told where to look
// (nssDirs in trust_<goos>.go) and reports each failure. It still goes
// through truststore's Install and Uninstall, as a truststore.Trust, which
// writes the certificate to the temporary file certutil reads.
type nssStore struct {
	e        *trustEnv
	certutil string
	dbs      []string // "sql:/path" or "dbm:/path"
}

func (e *trustEnv) openNSS() (trustStore, error) {
	if nssUnsupported != nil {
		return nil, fmt.Errorf("%w: %w", nssUnsupported, ErrStoreUnavailable)
	}
	certutil, err := e.lookPath("certutil")
	if err != nil {
		return nil, fmt.Errorf("certutil not found: %w (%s)", ErrStoreUnavailable, certutilHelp)
	}
	home := e.getenv("HOME")
	if home == "" {
		return nil, fmt.Errorf("$HOME is not set, so there is no NSS database to find: %w (set HOME)", ErrStoreUnavailable)
	}
	var dirs []string
	for _, pattern := range nssDirs(home) {
		m, _ := filepath.Glob(pattern) // the patterns are valid
		dirs = append(dirs, m...)
	}
	st := &nssStore{e: e, certutil: certutil}
	for _, d := range dirs {
		// cert9.db is the SQLite format (NSS 3.35+), cert8.db the old
		// Berkeley DB one.
		if _, err := os.Stat(filepath.Join(d, "cert9.db")); err == nil {
			st.dbs = append(st.dbs, "sql:"+d)
		} else if _, err := os.Stat(filepath.Join(d, "cert8.db")); err == nil {
			st.dbs = append(st.dbs, "dbm:"+d)
		}
	}
	if len(st.dbs) == 0 {
		db := filepath.Join(home, ".pki", "nssdb")
		return nil, fmt.Errorf("no NSS database in %s: %w (start Firefox once, or create one: mkdir -p %s && certutil -d sql:%[3]s -N --empty-password)", strings.Join(nssDirs(home), ", "), ErrStoreUnavailable, db)
	}
	return st, nil
}

func (st *nssStore) where() string { return strings.Join(st.dbs, ", ") }

// trusted reports whether every database has the CA.
func (st *nssStore) trusted(c *x509.Certificate) (bool, error) {
	for _, db := range st.dbs {
		if !st.has(db, c) {
			return false, nil
		}
	}
	return true, nil
}

// has lists the nickname in db; certutil -L fails when it is absent. The
// DER is compared too, so another CA that happens to share the nickname
// does not count.
func (st *nssStore) has(db string, c *x509.Certificate) bool {
	out, err := st.e.command(st.certutil, "-L", "-d", db, "-n", trustName(c), "-a")
	return err == nil && pemContains(out, c.Raw)
}

func (st *nssStore) add(c *x509.Certificate) error {
	return truststore.Install(c, truststore.WithNoSystem(), truststore.WithTrust(nssTrust{st}))
}

func (st *nssStore) remove(c *x509.Certificate) error {
	return truststore.Uninstall(c, truststore.WithNoSystem(), truststore.WithTrust(nssTrust{st}))
}

// nssTrust adapts nssStore to truststore.Trust.
type nssTrust struct{ st *nssStore }

func (t nssTrust) Name() string    { return "nss" }
func (t nssTrust) PreCheck() error { return nil } // openNSS checked
func (t nssTrust) Exists(c *x509.Certificate) bool {
	ok, _ := t.st.trusted(c)
	return ok
}

func (t nssTrust) Install(filename string, c *x509.Certificate) error {
	var errs []error
	for _, db := range t.st.dbs {
		// "C,,": a trusted CA for TLS servers; nothing for mail or code.
		if out, err := t.st.e.command(t.st.certutil, "-A", "-d", db, "-t", "C,,", "-n", trustName(c), "-i", filename); err != nil {
			errs = append(errs, fmt.Errorf("certutil -A -d %s: %w: %s", db, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

func (t nssTrust) Uninstall(_ string, c *x509.Certificate) error {
	var errs []error
	for _, db := range t.st.dbs {
		if !t.st.has(db, c) {
			continue
		}
		if out, err := t.st.e.command(t.st.certutil, "-D", "-d", db, "-n", trustName(c)); err != nil {
			errs = append(errs, fmt.Errorf("certutil -D -d %s: %w: %s", db, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}
