package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/smallstep/truststore"
)

// Store is a trust store that Install, Uninstall and Status work on.
type Store uint8

// Trust stores, in the order Install and Uninstall visit them. The order
// matters on Debian: updating the system store also rebuilds Java's cacerts
// (the ca-certificates-java hook), so the system store goes first and the
// Java store sees the result.
const (
	// StoreSystem is the operating system's store: a file in
	// /usr/local/share/ca-certificates and update-ca-certificates on
	// Debian and Ubuntu (or /etc/pki/ca-trust/source/anchors and
	// update-ca-trust on Fedora and RHEL), which rebuilds the bundle that
	// OpenSSL, curl, Go, Python's ssl module and, on Debian, Java read.
	// Writing it needs root.
	StoreSystem Store = iota + 1
	// StoreNSS is every NSS database of the user: Firefox profiles
	// (~/.mozilla/firefox/*, also the snap's) and ~/.pki/nssdb, which
	// Chromium and other NSS programs read. It needs certutil.
	StoreNSS
	// StoreJava is the cacerts keystore of the JDK in $JAVA_HOME, or of the
	// java on PATH. It needs keytool.
	StoreJava
)

// Stores returns every trust store, in the order Install visits them, in a
// new slice.
func Stores() []Store { return []Store{StoreSystem, StoreNSS, StoreJava} }

// String returns the name used on the command line: system, nss or java.
func (s Store) String() string {
	switch s {
	case StoreSystem:
		return "system"
	case StoreNSS:
		return "nss"
	case StoreJava:
		return "java"
	}
	return fmt.Sprintf("Store(%d)", uint8(s))
}

// ParseStore parses a store name (case-insensitively). "firefox" is
// accepted for nss.
func ParseStore(name string) (Store, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "firefox" {
		return StoreNSS, nil
	}
	for _, s := range Stores() {
		if n == s.String() {
			return s, nil
		}
	}
	return 0, fmt.Errorf("trust store %q: %w (want system, nss or java)", name, ErrUnknownStore)
}

// ParseStores parses a comma-separated list of store names, like the
// -stores flag takes; duplicates are dropped and the result is in Stores
// order.
func ParseStores(list string) ([]Store, error) {
	want := map[Store]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(name) == "" {
			continue
		}
		s, err := ParseStore(name)
		if err != nil {
			return nil, err
		}
		want[s] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("trust store list %q: %w (want system, nss or java)", list, ErrUnknownStore)
	}
	var out []Store
	for _, s := range Stores() {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseStore.
func (s *Store) UnmarshalText(text []byte) error {
	v, err := ParseStore(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Outcome is what Install, Uninstall or Status found or did in one store.
type Outcome uint8

// Outcomes.
const (
	// Installed: Install added the CA.
	Installed Outcome = iota + 1
	// AlreadyInstalled: Install found the CA trusted already and left the
	// store alone.
	AlreadyInstalled
	// Removed: Uninstall removed the CA.
	Removed
	// NotInstalled: the CA is not in the store (Status), or there was
	// nothing to remove (Uninstall).
	NotInstalled
	// Trusted: Status found the CA in the store.
	Trusted
	// Skipped: the store cannot be used here; StoreResult.Err says why and
	// how to fix it.
	Skipped
	// Failed: the store was changed, or checked, and the result is not what
	// was asked for; StoreResult.Err says what happened.
	Failed
)

// String returns a short lower-case description.
func (o Outcome) String() string {
	switch o {
	case Installed:
		return "installed"
	case AlreadyInstalled:
		return "already installed"
	case Removed:
		return "removed"
	case NotInstalled:
		return "not installed"
	case Trusted:
		return "trusted"
	case Skipped:
		return "skipped"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// StoreResult is the outcome in one store.
type StoreResult struct {
	Store   Store
	Outcome Outcome
	// Where names the file, databases or keystore involved, if known.
	Where string
	// Err is why the store was skipped or failed, ending with the fix
	// (wrapping ErrStoreUnavailable or ErrStoreFailed). For other outcomes
	// it is nil, or a note worth showing.
	Err error
}

// String formats r as one line: "system: installed (/usr/local/...crt)".
func (r StoreResult) String() string {
	s := r.Store.String() + ": " + r.Outcome.String()
	if r.Where != "" {
		s += " (" + r.Where + ")"
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// TrustOptions selects the stores Install, Uninstall and Status work on.
type TrustOptions struct {
	// Stores are the stores to use. Each one named here must succeed, or
	// Install and Uninstall return an error. If nil, every store: stores
	// that are not available here are skipped without an error, but
	// Install still fails if the CA ends up trusted nowhere.
	Stores []Store
}

func (o TrustOptions) stores() (stores []Store, explicit bool) {
	if o.Stores == nil {
		return Stores(), false
	}
	return o.Stores, true
}

// Install adds the CA certificate to the trust stores in opts, through
// smallstep/truststore, and reports per store what happened. It is
// idempotent: a store that already trusts the CA is left alone. Unlike
// truststore, which treats a store it cannot use as a success, Install
// reports it as Skipped with the reason and the fix, and checks every store
// again after changing it. The error joins every failed store and every
// skipped store that opts named.
//
// Entries are named "<common name> <serial>", as truststore names them; a
// tlsbridge CA's common name carries the host name and a random id, so
// several tlsbridge CAs stay apart in one store. Install never uses
// truststore's WithPrefix or WithDebug, which set package-level variables.
func (a *Authority) Install(opts TrustOptions) ([]StoreResult, error) {
	return a.installWith(osTrustEnv(), opts)
}

// Uninstall removes the CA certificate from the trust stores in opts and
// reports per store what happened, like Install.
func (a *Authority) Uninstall(opts TrustOptions) ([]StoreResult, error) {
	return a.uninstallWith(osTrustEnv(), opts)
}

// Status reports, per store in opts, whether the CA is trusted there now
// (Trusted or NotInstalled), or why that cannot be checked (Skipped). It
// changes nothing.
func (a *Authority) Status(opts TrustOptions) []StoreResult {
	return a.statusWith(osTrustEnv(), opts)
}

func (a *Authority) installWith(env *trustEnv, opts TrustOptions) ([]StoreResult, error) {
	stores, explicit := opts.stores()
	res := make([]StoreResult, 0, len(stores))
	for _, s := range stores {
		res = append(res, env.install(a.Cert, s))
	}
	err := collect("install CA", res, explicit)
	if err == nil && !explicit && !anyOutcome(res, Installed, AlreadyInstalled) {
		err = fmt.Errorf("install CA: trusted in no store: %w (fix one of the reasons above, or name the stores with -stores)", ErrStoreUnavailable)
	}
	return res, err
}

func (a *Authority) uninstallWith(env *trustEnv, opts TrustOptions) ([]StoreResult, error) {
	stores, explicit := opts.stores()
	res := make([]StoreResult, 0, len(stores))
	for _, s := range stores {
		res = append(res, env.uninstall(a.Cert, s))
	}
	return res, collect("uninstall CA", res, explicit)
}

func (a *Authority) statusWith(env *trustEnv, opts TrustOptions) []StoreResult {
	stores, _ := opts.stores()
	res := make([]StoreResult, 0, len(stores))
	for _, s := range stores {
		res = append(res, env.status(a.Cert, s))
	}
	return res
}

// collect joins the errors of failed stores, and of skipped ones if the
// caller named them.
func collect(op string, res []StoreResult, explicit bool) error {
	var errs []error
	for _, r := range res {
		if r.Outcome == Failed || (explicit && r.Outcome == Skipped) {
			errs = append(errs, fmt.Errorf("%s store: %w", r.Store, r.Err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", op, errors.Join(errs...))
}

func anyOutcome(res []StoreResult, want ...Outcome) bool {
	for _, r := range res {
		for _, w := range want {
			if r.Outcome == w {
				return true
			}
		}
	}
	return false
}

// trustName is the name of the CA's entry in every store: the system
// store's file name (spaces as underscores), the NSS nickname and the Java
// alias. It is what truststore v0.13.0's uniqueName returns without a
// prefix, so entries written by either are found by both.
func trustName(c *x509.Certificate) string {
	return c.Subject.CommonName + " " + c.SerialNumber.String()
}

// trustEnv is the environment the stores are found in: the process's
// (osTrustEnv), or a fake one in tests.
type trustEnv struct {
	getenv   func(string) string
	lookPath func(string) (string, error)
	euid     int
	// command runs a program and returns its combined output.
	command func(name string, args ...string) ([]byte, error)

	// systemFile is the anchor path pattern with one %s (truststore's
	// SystemTrustFilename), systemCmd the command that rebuilds the bundle;
	// both empty if the OS layout is unknown.
	systemFile string
	systemCmd  []string
	// bundles are the candidate system bundle files; the first that
	// exists is checked (the list crypto/x509 reads on Linux).
	bundles []string
	// systemInstall and systemUninstall change the system store; they are
	// truststore's, which always works on the real system.
	systemInstall, systemUninstall func(*x509.Certificate) error
}

func osTrustEnv() *trustEnv {
	return &trustEnv{
		getenv:   os.Getenv,
		lookPath: exec.LookPath,
		euid:     os.Geteuid(),
		command: func(name string, args ...string) ([]byte, error) {
			return exec.Command(name, args...).CombinedOutput()
		},
		// Read, never written: truststore picks them in init for this OS.
		systemFile: truststore.SystemTrustFilename,
		systemCmd:  truststore.SystemTrustCommand,
		bundles: []string{
			"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine
			"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
			"/etc/ssl/ca-bundle.pem",                            // openSUSE
			"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7+
			"/etc/ssl/cert.pem",                                 // Alpine, macOS
		},
		// With no options truststore touches the system store only; its
		// per-store prechecks are ours (below), so nothing is skipped
		// silently.
		systemInstall: func(c *x509.Certificate) error { return truststore.Install(c) },
		systemUninstall: func(c *x509.Certificate) error {
			if err := truststore.Uninstall(c); err != nil {
				return err
			}
			return finishDebianRemoval(c)
		},
	}
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

// trustStore is one store, found and checked for use.
type trustStore interface {
	where() string
	trusted(c *x509.Certificate) (bool, error)
	add(c *x509.Certificate) error
	remove(c *x509.Certificate) error
}

// open finds store s for certificate c. With write set it also checks that
// s can be changed. Its errors wrap ErrStoreUnavailable and end with the
// fix.
func (e *trustEnv) open(s Store, c *x509.Certificate, write bool) (trustStore, error) {
	switch s {
	case StoreSystem:
		return e.openSystem(c, write)
	case StoreNSS:
		return e.openNSS()
	case StoreJava:
		return e.openJava(write)
	}
	return nil, fmt.Errorf("%v: %w", s, ErrUnknownStore)
}

func (e *trustEnv) status(c *x509.Certificate, s Store) StoreResult {
	st, err := e.open(s, c, false)
	if err != nil {
		return StoreResult{Store: s, Outcome: Skipped, Err: err}
	}
	ok, err := st.trusted(c)
	switch {
	case err != nil:
		return StoreResult{Store: s, Outcome: Skipped, Where: st.where(), Err: err}
	case ok:
		return StoreResult{Store: s, Outcome: Trusted, Where: st.where()}
	}
	return StoreResult{Store: s, Outcome: NotInstalled, Where: st.where()}
}

func (e *trustEnv) install(c *x509.Certificate, s Store) StoreResult {
	// Already there needs no rights: check before asking for them.
	if r := e.status(c, s); r.Outcome == Trusted {
		r.Outcome = AlreadyInstalled
		return r
	}
	st, err := e.open(s, c, true)
	if err != nil {
		return StoreResult{Store: s, Outcome: Skipped, Err: err}
	}
	r := StoreResult{Store: s, Where: st.where()}
	if err := st.add(c); err != nil {
		r.Outcome, r.Err = Failed, fmt.Errorf("add %q to %s: %w: %w", trustName(c), st.where(), ErrStoreFailed, err)
		return r
	}
	ok, err := st.trusted(c)
	if err != nil || !ok {
		r.Outcome, r.Err = Failed, fmt.Errorf("added %q to %s, but the store does not trust it afterwards: %w%s", trustName(c), st.where(), ErrStoreFailed, because(err))
		return r
	}
	r.Outcome = Installed
	return r
}

func (e *trustEnv) uninstall(c *x509.Certificate, s Store) StoreResult {
	st, err := e.open(s, c, false)
	if err != nil {
		return StoreResult{Store: s, Outcome: Skipped, Err: err}
	}
	r := StoreResult{Store: s, Where: st.where()}
	if ok, err := st.trusted(c); err == nil && !ok {
		r.Outcome = NotInstalled
		return r
	}
	if st, err = e.open(s, c, true); err != nil {
		return StoreResult{Store: s, Outcome: Skipped, Where: r.Where, Err: err}
	}
	if err := st.remove(c); err != nil {
		r.Outcome, r.Err = Failed, fmt.Errorf("remove %q from %s: %w: %w", trustName(c), st.where(), ErrStoreFailed, err)
		return r
	}
	ok, err := st.trusted(c)
	if err != nil || ok {
		r.Outcome, r.Err = Failed, fmt.Errorf("removed %q from %s, but the store still trusts the CA: %w%s", trustName(c), st.where(), ErrStoreFailed, stillTrustedHint(s, err))
		return r
	}
	r.Outcome = Removed
	return r
}

// systemFileName is the file name truststore (and so Debian's
// /etc/ssl/certs symlink) gives the CA: its trust name with underscores.
func systemFileName(c *x509.Certificate) string {
	return strings.ReplaceAll(trustName(c), " ", "_")
}

func because(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

func stillTrustedHint(s Store, err error) string {
	if err != nil {
		return because(err)
	}
	switch s {
	case StoreJava:
		// Debian's ca-certificates-java copies system anchors into
		// cacerts under "debian:<file>" aliases.
		return " (it is also there under another alias, e.g. copied from the system store by Debian's ca-certificates-java: run tlsbridge ca uninstall -stores system,java)"
	case StoreSystem:
		return " (the bundle has it from another file: find it with grep -l in /usr/local/share/ca-certificates, remove it, run update-ca-certificates)"
	}
	return ""
}

// ---- system store ----

// systemStore is the OS store as truststore writes it: one anchor file,
// then a command that rebuilds the bundle clients read.
type systemStore struct {
	e      *trustEnv
	anchor string // the file truststore writes for this CA
	bundle string // the bundle clients read, "" if none was found
}

func (e *trustEnv) openSystem(c *x509.Certificate, write bool) (trustStore, error) {
	if e.systemFile == "" || len(e.systemCmd) == 0 {
		return nil, fmt.Errorf("no known system trust store layout on this OS: %w (export the CA with tlsbridge ca export and add it by hand)", ErrStoreUnavailable)
	}
	st := &systemStore{
		e: e,
		// The name truststore gives the file.
		anchor: fmt.Sprintf(e.systemFile, systemFileName(c)),
	}
	for _, b := range e.bundles {
		if _, err := os.Stat(b); err == nil {
			st.bundle = b
			break
		}
	}
	if !write {
		return st, nil
	}
	if _, err := e.lookPath(e.systemCmd[0]); err != nil {
		return nil, fmt.Errorf("%s not found: %w (run apt-get install ca-certificates, or dnf install ca-certificates)", e.systemCmd[0], ErrStoreUnavailable)
	}
	if e.euid != 0 {
		return nil, fmt.Errorf("writing %s needs root: %w (run sudo tlsbridge ca install -stores system)", filepath.Dir(e.systemFile), ErrStoreUnavailable)
	}
	return st, nil
}

func (st *systemStore) where() string { return st.anchor }

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

func (st *systemStore) add(c *x509.Certificate) error    { return st.e.systemInstall(c) }
func (st *systemStore) remove(c *x509.Certificate) error { return st.e.systemUninstall(c) }

// pemContains reports whether a PEM bundle holds a certificate with this
// DER encoding.
func pemContains(bundle, der []byte) bool {
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, der) {
			return true
		}
	}
}

// ---- NSS ----

// nssStore is every NSS database of the user. truststore's own NSS trust
// finds the databases once, at package init, from $HOME, and ignores a
// certutil failure in any one of them; this one is told where to look and
// reports each failure. It still goes through truststore's Install and
// Uninstall, as a truststore.Trust.
type nssStore struct {
	e        *trustEnv
	certutil string
	dbs      []string // "sql:/path" or "dbm:/path"
}

func (e *trustEnv) openNSS() (trustStore, error) {
	certutil, err := e.lookPath("certutil")
	if err != nil {
		return nil, fmt.Errorf("certutil not found: %w (run apt-get install libnss3-tools, or dnf install nss-tools)", ErrStoreUnavailable)
	}
	home := e.getenv("HOME")
	if home == "" {
		return nil, fmt.Errorf("$HOME is not set, so there is no NSS database to find: %w (set HOME)", ErrStoreUnavailable)
	}
	dirs := []string{filepath.Join(home, ".pki", "nssdb")}
	for _, pattern := range []string{
		filepath.Join(home, ".mozilla", "firefox", "*"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"),
	} {
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
		return nil, fmt.Errorf("no NSS database in %s or a Firefox profile: %w (start Firefox once, or create one: mkdir -p %[1]s && certutil -d sql:%[1]s -N --empty-password)", filepath.Join(home, ".pki", "nssdb"), ErrStoreUnavailable)
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

// ---- Java ----

// javaStore is a JDK's cacerts keystore. truststore's own Java trust needs
// $JAVA_HOME; this one also finds the JDK of the java on PATH, which is how
// Debian and most containers set Java up.
type javaStore struct {
	e       *trustEnv
	home    string
	keytool string
	cacerts string
}

func (e *trustEnv) openJava(write bool) (trustStore, error) {
	home := e.getenv("JAVA_HOME")
	if home == "" {
		java, err := e.lookPath("java")
		if err != nil {
			return nil, fmt.Errorf("JAVA_HOME is not set and there is no java on PATH: %w (set JAVA_HOME to the JDK your app runs on, e.g. JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64)", ErrStoreUnavailable)
		}
		if real, err := filepath.EvalSymlinks(java); err == nil {
			java = real
		}
		home = filepath.Dir(filepath.Dir(java)) // <home>/bin/java
	}
	st := &javaStore{e: e, home: home, keytool: filepath.Join(home, "bin", "keytool")}
	if _, err := os.Stat(st.keytool); err != nil {
		return nil, fmt.Errorf("no keytool in %s: %w (set JAVA_HOME to a JDK or JRE that has bin/keytool)", filepath.Join(home, "bin"), ErrStoreUnavailable)
	}
	for _, p := range []string{
		filepath.Join(home, "lib", "security", "cacerts"),        // Java 9+
		filepath.Join(home, "jre", "lib", "security", "cacerts"), // Java 8 JDK
	} {
		if _, err := os.Stat(p); err == nil {
			st.cacerts = p
			break
		}
	}
	if st.cacerts == "" {
		return nil, fmt.Errorf("no lib/security/cacerts in %s: %w (set JAVA_HOME to the JDK your app runs on)", home, ErrStoreUnavailable)
	}
	if write {
		// Opening for writing without O_TRUNC changes nothing.
		f, err := os.OpenFile(st.cacerts, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w (run sudo tlsbridge ca install -stores java)", st.cacerts, ErrStoreUnavailable)
		}
		f.Close()
	}
	return st, nil
}

func (st *javaStore) where() string { return st.cacerts }

// trusted looks for the CA's SHA-256 fingerprint in the keystore listing,
// whatever its alias: Java trusts it either way.
func (st *javaStore) trusted(c *x509.Certificate) (bool, error) {
	out, err := st.e.command(st.keytool, "-list", "-keystore", st.cacerts, "-storepass", truststore.JavaStorePass)
	if err != nil {
		return false, fmt.Errorf("keytool -list -keystore %s: %w: %s", st.cacerts, err, firstLine(out))
	}
	return bytes.Contains(out, []byte(fingerprint(c))), nil
}

func (st *javaStore) add(c *x509.Certificate) error {
	return truststore.Install(c, truststore.WithNoSystem(), truststore.WithTrust(javaTrust{st}))
}

func (st *javaStore) remove(c *x509.Certificate) error {
	return truststore.Uninstall(c, truststore.WithNoSystem(), truststore.WithTrust(javaTrust{st}))
}

// javaTrust adapts javaStore to truststore.Trust.
type javaTrust struct{ st *javaStore }

func (t javaTrust) Name() string    { return "java" }
func (t javaTrust) PreCheck() error { return nil } // openJava checked
func (t javaTrust) Exists(c *x509.Certificate) bool {
	ok, _ := t.st.trusted(c)
	return ok
}

func (t javaTrust) Install(filename string, c *x509.Certificate) error {
	out, err := t.st.e.command(t.st.keytool, "-importcert", "-noprompt", "-keystore", t.st.cacerts,
		"-storepass", truststore.JavaStorePass, "-file", filename, "-alias", trustName(c))
	if err != nil {
		return fmt.Errorf("keytool -importcert: %w: %s", err, firstLine(out))
	}
	return nil
}

func (t javaTrust) Uninstall(_ string, c *x509.Certificate) error {
	out, err := t.st.e.command(t.st.keytool, "-delete", "-alias", trustName(c), "-keystore", t.st.cacerts,
		"-storepass", truststore.JavaStorePass)
	if err != nil && !bytes.Contains(out, []byte("does not exist")) {
		return fmt.Errorf("keytool -delete: %w: %s", err, firstLine(out))
	}
	return nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}
