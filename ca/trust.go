package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Store is a trust store that Install, Uninstall and Status work on.
type Store uint8

// Trust stores, in the order Install and Uninstall visit them. The order
// matters on Debian: updating the system store also rebuilds Java's cacerts
// (the ca-certificates-java hook), so the system store goes first and the
// Java store sees the result.
const (
	// StoreSystem is the operating system's store (trust_<goos>.go).
	// Linux: a file in /usr/local/share/ca-certificates and
	// update-ca-certificates on Debian and Ubuntu (or
	// /etc/pki/ca-trust/source/anchors and update-ca-trust on Fedora and
	// RHEL), which rebuilds the bundle that OpenSSL, curl, Go, Python's ssl
	// module and, on Debian, Java read. Windows: the ROOT store of the
	// machine (of the current user when not elevated), which SChannel,
	// .NET, Chrome and Edge read. macOS: the System keychain with trust
	// settings. Writing it needs root (an elevated process on Windows).
	StoreSystem Store = iota + 1
	// StoreNSS is every NSS database of the user (trust_nss.go): Firefox
	// profiles and, on Linux, ~/.pki/nssdb, which Chromium and other NSS
	// programs read. It needs NSS's certutil.
	StoreNSS
	// StoreJava is the cacerts keystore of the JDK in $JAVA_HOME, or of the
	// java on PATH (trust_java.go). It needs keytool.
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
	// Err is why the store was skipped or failed, with the fix where it
	// is outside tlsbridge (a package to install, a variable to set). It
	// wraps ErrStoreUnavailable or ErrStoreFailed, and ErrNeedsAdmin,
	// ErrNoSystemStore or ErrTrustedElsewhere where those apply, so a
	// command line can add how to run itself again. For other outcomes it
	// is nil, or a note worth showing.
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
// smallstep/truststore where it does the job, and reports per store what happened. It is
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
		res = append(res, env.install(a.Root(), s))
	}
	err := collect("install CA", res, explicit)
	if err == nil && !explicit && !anyOutcome(res, Installed, AlreadyInstalled) {
		err = fmt.Errorf("install CA: %w: %w", ErrTrustedNowhere, ErrStoreUnavailable)
	}
	return res, err
}

func (a *Authority) uninstallWith(env *trustEnv, opts TrustOptions) ([]StoreResult, error) {
	stores, explicit := opts.stores()
	res := make([]StoreResult, 0, len(stores))
	for _, s := range stores {
		res = append(res, env.uninstall(a.Root(), s))
	}
	return res, collect("uninstall CA", res, explicit)
}

func (a *Authority) statusWith(env *trustEnv, opts TrustOptions) []StoreResult {
	stores, _ := opts.stores()
	res := make([]StoreResult, 0, len(stores))
	for _, s := range stores {
		res = append(res, env.status(a.Root(), s))
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

// trustName is the name of the CA's entry in every store: the Linux system
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
	// command runs a program and returns its combined output.
	command func(name string, args ...string) ([]byte, error)
	// admin reports whether the process may change machine-wide stores:
	// root on Unix, an elevated token on Windows (isAdmin in
	// trust_<goos>.go).
	admin bool
	// sys is what the platform's system store needs (systemEnv in
	// trust_<goos>.go).
	sys systemEnv
	// openSys, if not nil, replaces the platform's openSystem: tests
	// use it to run another platform's store logic (trust_rootstore.go)
	// on this one.
	openSys func(c *x509.Certificate, write bool) (trustStore, error)
}

func osTrustEnv() *trustEnv {
	return &trustEnv{
		getenv:   os.Getenv,
		lookPath: exec.LookPath,
		admin:    isAdmin(),
		command: func(name string, args ...string) ([]byte, error) {
			return exec.Command(name, args...).CombinedOutput()
		},
		sys: osSystemEnv(),
	}
}

// trustStore is one store, found and checked for use.
type trustStore interface {
	where() string
	trusted(c *x509.Certificate) (bool, error)
	add(c *x509.Certificate) error
	remove(c *x509.Certificate) error
}

// open finds store s for certificate c. With write set it also checks that
// s can be changed. Its errors wrap ErrStoreUnavailable.
func (e *trustEnv) open(s Store, c *x509.Certificate, write bool) (trustStore, error) {
	switch s {
	case StoreSystem:
		if e.openSys != nil {
			return e.openSys(c, write)
		}
		return e.openSystem(c, write) // trust_<goos>.go
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
	// The after-change check: truststore returns nil from some stores
	// when it did nothing, so only the store's own answer counts.
	ok, err := st.trusted(c)
	if err != nil || !ok {
		r.Outcome, r.Err = Failed, fmt.Errorf("added %q to %s, but the store does not trust it afterwards: %w%s", trustName(c), st.where(), ErrStoreFailed, because(err))
		return r
	}
	r.Outcome = Installed
	if n, ok := st.(noter); ok {
		r.Err = n.note()
	}
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
		r.Outcome, r.Err = Failed, fmt.Errorf("removed %q from %s, but the store still trusts the CA: %w%w", trustName(c), st.where(), ErrStoreFailed, stillTrusted(st, err))
		return r
	}
	r.Outcome = Removed
	return r
}

// noter is a store with something to say after a successful install,
// such as which of two stores it used.
type noter interface{ note() error }

// elsewhere is a store that knows where else the CA may come from after
// its entry is gone.
type elsewhere interface{ elsewhere() string }

// stillTrusted explains why a store still trusts the CA after Uninstall:
// the check's error, or ErrTrustedElsewhere with the store's guess.
func stillTrusted(st trustStore, err error) error {
	if err != nil {
		return fmt.Errorf(" (%w)", err)
	}
	if w, ok := st.(elsewhere); ok {
		return fmt.Errorf(" (%w: %s)", ErrTrustedElsewhere, w.elsewhere())
	}
	return fmt.Errorf(" (%w)", ErrTrustedElsewhere)
}

func because(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

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

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}
