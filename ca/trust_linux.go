package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/smallstep/truststore"
)

// Linux: the system store is one anchor file per CA plus the command that
// rebuilds the bundle clients read (truststore's SystemTrustFilename and
// SystemTrustCommand, which it picks in init for the distribution).

const (
	exeSuffix       = ""
	certutilHelp    = "apt-get install libnss3-tools, or dnf install nss-tools"
	javaHomeExample = "/usr/lib/jvm/java-17-openjdk-amd64"
)

// nssUnsupported is nil: NSS's certutil is packaged on every distribution.
var nssUnsupported error

// nssDirs are the glob patterns of the NSS databases under home:
// Chromium's shared database and the Firefox profiles (also the snap's).
func nssDirs(home string) []string {
	return []string{
		filepath.Join(home, ".pki", "nssdb"),
		filepath.Join(home, ".mozilla", "firefox", "*"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"),
	}
}

func isAdmin() bool { return os.Geteuid() == 0 }

// systemEnv is the Linux system store's layout and the truststore calls
// that change it.
type systemEnv struct {
	// file is the anchor path pattern with one %s (truststore's
	// SystemTrustFilename), cmd the command that rebuilds the bundle;
	// both empty if the distribution's layout is unknown.
	file string
	cmd  []string
	// bundles are the candidate bundle files; the first that exists is
	// checked (the list crypto/x509 reads on Linux).
	bundles []string
	// install and uninstall change the store; they are truststore's,
	// which always works on the real system.
	install, uninstall func(*x509.Certificate) error
}

func osSystemEnv() systemEnv {
	return systemEnv{
		// Read, never written: truststore picks them in init.
		file: truststore.SystemTrustFilename,
		cmd:  truststore.SystemTrustCommand,
		bundles: []string{
			"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine
			"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
			"/etc/ssl/ca-bundle.pem",                            // openSUSE
			"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7+
			"/etc/ssl/cert.pem",                                 // Alpine
		},
		// With no options truststore touches the system store only; the
		// prechecks are openSystem's, so nothing is skipped silently.
		install: func(c *x509.Certificate) error { return truststore.Install(c) },
		uninstall: func(c *x509.Certificate) error {
			if err := truststore.Uninstall(c); err != nil {
				return err
			}
			return finishDebianRemoval(c)
		},
	}
}

// systemStore is the Linux store as truststore writes it: one anchor file,
// then a command that rebuilds the bundle clients read.
type systemStore struct {
	e      *trustEnv
	anchor string // the file truststore writes for this CA
	bundle string // the bundle clients read, "" if none was found
}

func (e *trustEnv) openSystem(c *x509.Certificate, write bool) (trustStore, error) {
	if e.sys.file == "" || len(e.sys.cmd) == 0 {
		return nil, fmt.Errorf("%w layout on this Linux distribution: %w", ErrNoSystemStore, ErrStoreUnavailable)
	}
	st := &systemStore{e: e, anchor: fmt.Sprintf(e.sys.file, systemFileName(c))}
	for _, b := range e.sys.bundles {
		if _, err := os.Stat(b); err == nil {
			st.bundle = b
			break
		}
	}
	if !write {
		return st, nil
	}
	if _, err := e.lookPath(e.sys.cmd[0]); err != nil {
		return nil, fmt.Errorf("%s not found: %w (apt-get install ca-certificates, or dnf install ca-certificates)", e.sys.cmd[0], ErrStoreUnavailable)
	}
	if !e.admin {
		return nil, fmt.Errorf("writing %s needs root: %w: %w", filepath.Dir(e.sys.file), ErrNeedsAdmin, ErrStoreUnavailable)
	}
	return st, nil
}

func (st *systemStore) where() string { return st.anchor }

// elsewhere: update-ca-certificates bundles every file in the directory.
func (st *systemStore) elsewhere() string {
	return "the bundle has it from another file: find it with grep -l in " + filepath.Dir(st.anchor) + ", remove it, run " + strings.Join(st.e.sys.cmd, " ")
}

// trusted reports whether the bundle holds the certificate: the file alone
// is not enough, clients read the bundle. Without a bundle, the file is all
// there is to check.
func (st *systemStore) trusted(c *x509.Certificate) (bool, error) {
	if st.bundle == "" {
		_, err := os.Stat(st.anchor)
		return err == nil, nil
	}
	data, err := os.ReadFile(st.bundle)
	if err != nil {
		return false, fmt.Errorf("read system bundle: %w", err)
	}
	return pemContains(data, c.Raw), nil
}

func (st *systemStore) add(c *x509.Certificate) error    { return st.e.sys.install(c) }
func (st *systemStore) remove(c *x509.Certificate) error { return st.e.sys.uninstall(c) }

// systemFileName is the file name truststore (and so Debian's
// /etc/ssl/certs symlink) gives the CA: its trust name with underscores.
func systemFileName(c *x509.Certificate) string {
	return strings.ReplaceAll(trustName(c), " ", "_")
}

// Debian's layout (ca-certificates).
const (
	debianCertsDir = "/etc/ssl/certs"
	debianHooksDir = "/etc/ca-certificates/update.d"
)

// finishDebianRemoval completes what truststore's uninstall leaves undone
// on Debian. Deleting a file from /usr/local/share/ca-certificates and
// running update-ca-certificates (without --fresh) rebuilds the bundle, but
// counts no removal: the /etc/ssl/certs symlink is left dangling and the
// hooks are never told, so ca-certificates-java keeps the CA in Java's
// cacerts as "debian:<name>.pem" and Java apps still trust it. This does
// what update-ca-certificates does for a removal it notices: delete the
// symlink, pipe "-<symlink>" to every hook, rehash. (--fresh would also
// work, but it rebuilds Java's cacerts from scratch, dropping entries that
// other tools added.)
func finishDebianRemoval(c *x509.Certificate) error {
	if _, err := os.Stat(debianHooksDir); err != nil {
		return nil // not Debian
	}
	link := filepath.Join(debianCertsDir, systemFileName(c)+".pem")
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil // update-ca-certificates did remove it, or never made it
	}
	if _, err := os.Stat(link); err == nil {
		return nil // not dangling: the certificate is still installed
	}
	if err := os.Remove(link); err != nil {
		return fmt.Errorf("remove dangling %s: %w", link, err)
	}
	hooks, err := os.ReadDir(debianHooksDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", debianHooksDir, err)
	}
	var errs []error
	for _, h := range hooks {
		path := filepath.Join(debianHooksDir, h.Name())
		if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		cmd := exec.Command(path)
		cmd.Stdin = strings.NewReader("-" + link + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("hook %s: %w: %s", path, err, firstLine(out)))
		}
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		// Drops the hash link to the removed file; best effort, as in
		// update-ca-certificates.
		_ = exec.Command(openssl, "rehash", debianCertsDir).Run()
	}
	return errors.Join(errs...)
}
