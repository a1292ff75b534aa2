package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
)

// expiryWarning is how long before the CA's expiry `run` starts warning.
const expiryWarning = 30 * 24 * time.Hour

// trustFlags are the flags of ca install and ca uninstall.
type trustFlags struct {
	commonFlags
	stores string
}

func parseTrustFlags(name string, args []string, stderr io.Writer) (trustFlags, ca.TrustOptions, error) {
	var tf trustFlags
	fs := newFlagSet(name, stderr)
	tf.register(fs)
	fs.StringVar(&tf.stores, "stores", "", "comma-separated trust stores: system, nss (Firefox, Chromium), java (default: every store available here)")
	if err := parseFlags(fs, args, 0); err != nil {
		return tf, ca.TrustOptions{}, err
	}
	var opts ca.TrustOptions
	if tf.stores != "" {
		stores, err := ca.ParseStores(tf.stores)
		if err != nil {
			return tf, opts, fmt.Errorf("%s: -stores: %w", name, err)
		}
		opts.Stores = stores
	}
	return tf, opts, nil
}

// runCAInstall is "tlsbridge ca install": add the CA to the trust stores
// and say, per store, what happened.
func runCAInstall(args []string, stdout, stderr io.Writer) error {
	return runTrustOp("install", args, stdout, stderr, (*ca.Authority).Install,
		"apps that read these stores now trust tlsbridge; apps with their own store: tlsbridge ca export -out tlsbridge-ca.pem (see docs/trust.md)")
}

// runCAUninstall is "tlsbridge ca uninstall".
func runCAUninstall(args []string, stdout, stderr io.Writer) error {
	return runTrustOp("uninstall", args, stdout, stderr, (*ca.Authority).Uninstall, "")
}

// runTrustOp runs install or uninstall over the stores the flags name and
// prints one line per store; done is printed after a full success.
func runTrustOp(verb string, args []string, stdout, stderr io.Writer, op func(*ca.Authority, ca.TrustOptions) ([]ca.StoreResult, error), done string) error {
	tf, opts, err := parseTrustFlags("ca "+verb, args, stderr)
	if err != nil {
		return ignoreHelp(err)
	}
	a, err := loadCA(tf.commonFlags)
	if err != nil {
		return err
	}
	if len(a.Chain()) > 0 {
		fmt.Fprintf(stdout, "root %q of the sub-CA %q (%s)\n", a.Root().Subject.CommonName, a.Cert.Subject.CommonName, a.CertPath())
	} else {
		fmt.Fprintf(stdout, "CA %q (%s)\n", a.Cert.Subject.CommonName, a.CertPath())
	}
	res, err := op(a, opts)
	printResults(stdout, res, func(r ca.StoreResult) string { return storeHint(verb, a.Dir, r) })
	if err != nil {
		again := fmt.Sprintf("fix the stores above, then run tlsbridge ca %s %s again", verb, storesArg(tf.stores))
		if errors.Is(err, ca.ErrTrustedNowhere) {
			again = "fix one of the stores above, or name the stores with -stores, then run tlsbridge ca " + verb + " again"
		}
		return fmt.Errorf("%w\n%s", err, again)
	}
	if done != "" {
		fmt.Fprintln(stdout, done)
	}
	return nil
}

func storesArg(s string) string {
	if s == "" {
		return ""
	}
	return "-stores " + s
}

// printResults prints one line per store, then its reason and, if hint
// has one, the command that fixes it.
func printResults(w io.Writer, res []ca.StoreResult, hint func(ca.StoreResult) string) {
	for _, r := range res {
		fmt.Fprintf(w, "  %-7s %s", r.Store, r.Outcome)
		if r.Where != "" {
			fmt.Fprintf(w, "  %s", r.Where)
		}
		fmt.Fprintln(w)
		if r.Err != nil {
			fmt.Fprintf(w, "          %s\n", r.Err)
		}
		if h := hint(r); h != "" {
			fmt.Fprintf(w, "          %s\n", h)
		}
	}
}

// storeHint is the tlsbridge command that fixes a store's problem, for the
// reasons the ca package can only name (ca returns sentinels, cmd knows its
// own command line). The CA directory is spelled out: under sudo, $HOME and
// so the default directory may be root's.
func storeHint(verb, dir string, r ca.StoreResult) string {
	switch {
	case r.Err == nil:
		return ""
	case errors.Is(r.Err, ca.ErrNeedsAdmin):
		return "run " + asAdmin(fmt.Sprintf("tlsbridge ca %s -ca-dir %s -stores %s", verb, quoteArg(dir), r.Store))
	case errors.Is(r.Err, ca.ErrNoSystemStore):
		return "add the CA by hand: tlsbridge ca export -ca-dir " + quoteArg(dir) + " -out tlsbridge-ca.pem (see docs/trust.md)"
	case errors.Is(r.Err, ca.ErrTrustedElsewhere) && r.Store == ca.StoreJava:
		return "run " + asAdmin("tlsbridge ca uninstall -ca-dir "+quoteArg(dir)+" -stores system,java")
	}
	return ""
}

// quoteArg quotes a path for the hint if a shell would split it.
func quoteArg(s string) string {
	if strings.ContainsAny(s, " \t'\"$&;|()<>*?") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// runCAImport is "tlsbridge ca import CERT KEY": use an existing CA (a
// team's internal one) instead of a generated one.
func runCAImport(args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("ca import", stderr)
	cf.register(fs)
	force := fs.Bool("force", false, "replace an existing CA (the previous files are kept as dated .bak copies)")
	chain := fs.String("chain", "", "for a sub-CA: its issuers up to and including the root, PEM (they may also follow the CA in CERT.pem)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tlsbridge ca import [-ca-dir DIR] [-config PATH] [-force] [-chain CHAIN.pem] CERT.pem KEY.pem")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, 2); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("ca import: want CERT and KEY, got %d arguments: %w", fs.NArg(), errUsage)
	}
	certPath, keyPath := fs.Arg(0), fs.Arg(1)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("ca import: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("ca import: %w", err)
	}
	var chainPEM []byte
	if *chain != "" {
		if chainPEM, err = os.ReadFile(*chain); err != nil {
			return fmt.Errorf("ca import: -chain: %w", err)
		}
	}
	a, err := ca.ParseWithChain(certPEM, keyPEM, chainPEM)
	if err != nil {
		if errors.Is(err, ca.ErrIncompleteChain) {
			return fmt.Errorf("ca import %s %s: %w", certPath, keyPath, err)
		}
		return fmt.Errorf("ca import %s %s: %w (want a CA certificate and its RSA or ECDSA key in PKCS #1, PKCS #8 or SEC 1 PEM; for a sub-CA, -chain with its issuers up to the root)", certPath, keyPath, err)
	}
	pol, err := cf.loadPolicy()
	if err != nil {
		return err
	}
	dir, err := ca.Dir(cf.caDir, pol.CA.Dir)
	if err != nil {
		return err
	}
	if *force {
		if err := backupForReplace(dir, stdout); err != nil {
			return fmt.Errorf("ca import: %w", err)
		}
	}
	if err := a.Save(dir, *force); err != nil {
		if errors.Is(err, ca.ErrCAExists) {
			return fmt.Errorf("ca import: %s already has a CA; to replace it run tlsbridge ca import -force %s %s (the old files are kept as .bak)", dir, certPath, keyPath)
		}
		return fmt.Errorf("ca import: %w", err)
	}
	fmt.Fprintf(stdout, "imported CA %q into %s\n  sha256  %s\n  valid   until %s\n",
		a.Cert.Subject.String(), dir, a.Fingerprint(), a.Cert.NotAfter.UTC().Format(time.DateOnly))
	if names := permitted(a.Cert); names != "" {
		fmt.Fprintf(stdout, "  permitted  %s\n", names)
	}
	if len(a.Chain()) > 0 {
		fmt.Fprintf(stdout, "  chain   %s\n  apps trust the root %q (sha256 %s)\n",
			describeChain(a), a.Root().Subject.CommonName, a.RootFingerprint())
	} else if a.Root() == a.Cert && !isSelfSigned(a) {
		fmt.Fprintln(stdout, "  warning: no chain: apps must trust this sub-CA itself; to have them trust your root, import again with -force -chain ROOT.pem")
	}
	fmt.Fprintln(stdout, "next: tlsbridge ca install (if the CA is not trusted yet), then tlsbridge run (a running tlsbridge takes the new CA on SIGHUP)")
	warnPermissions(stdout, dir) // an existing directory keeps its mode
	return nil
}

// backupForReplace keeps the CA files in dir as dated .bak copies before
// they are replaced, and says so; a CA that is still trusted somewhere gets
// a warning, because replacing the files does not remove it from the stores.
func backupForReplace(dir string, stdout io.Writer) error {
	if old, err := ca.Load(dir); err == nil {
		var where []string
		for _, r := range old.Status(ca.TrustOptions{}) {
			if r.Outcome == ca.Trusted {
				where = append(where, r.Store.String())
			}
		}
		if len(where) > 0 {
			fmt.Fprintf(stdout, "warning: the previous CA %q stays trusted in %s; to remove it, run tlsbridge ca uninstall -stores %s before replacing it (or restore the .bak files, uninstall, and replace again)\n",
				old.Cert.Subject.CommonName, strings.Join(where, ", "), strings.Join(where, ","))
		}
	}
	made, err := ca.Backup(dir, time.Now())
	if err != nil {
		return err
	}
	for _, m := range made {
		fmt.Fprintf(stdout, "kept the previous CA file as %s\n", m)
	}
	return nil
}

// trustedIn describes where the CA is trusted now, for ca info.
func trustedIn(a *ca.Authority) string {
	var parts []string
	for _, r := range a.Status(ca.TrustOptions{}) {
		switch r.Outcome {
		case ca.Trusted:
			parts = append(parts, fmt.Sprintf("%s (%s)", r.Store, r.Where))
		case ca.Skipped:
			parts = append(parts, fmt.Sprintf("%s: cannot tell (%s)", r.Store, shortReason(r.Err)))
		default:
			parts = append(parts, fmt.Sprintf("%s: no", r.Store))
		}
	}
	return strings.Join(parts, "\n             ")
}

// shortReason is an unavailable store's reason up to its colon: "certutil
// not found".
func shortReason(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); i > 0 {
		return s[:i]
	}
	return s
}

// warnCAExpiry logs at Warn when the CA expires within expiryWarning: new
// leaves are clamped to the CA's NotAfter, so every app breaks that day.
func warnCAExpiry(a *ca.Authority, log *logrus.Entry) {
	left := time.Until(a.Cert.NotAfter)
	if left >= expiryWarning {
		return
	}
	e := log.WithField(logfield.CADir, a.Dir)
	if left <= 0 {
		e.Errorf("the CA expired on %s: apps reject every certificate; run tlsbridge ca init -force, then tlsbridge ca install",
			a.Cert.NotAfter.UTC().Format(time.DateOnly))
		return
	}
	e.Warnf("the CA expires on %s (in %d days): run tlsbridge ca init -force, then tlsbridge ca install, before it does",
		a.Cert.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24))
}

// describeChain is the CA's path to its root for a person: "sub-CA ->
// org root (root, not served)".
func describeChain(a *ca.Authority) string {
	parts := []string{a.Cert.Subject.CommonName}
	for _, c := range a.Chain() {
		parts = append(parts, c.Subject.CommonName)
	}
	return strings.Join(parts, " -> ") + " (the root is not served; apps must have it)"
}

// isSelfSigned reports whether the CA is a root.
func isSelfSigned(a *ca.Authority) bool {
	return bytes.Equal(a.Cert.RawIssuer, a.Cert.RawSubject)
}
