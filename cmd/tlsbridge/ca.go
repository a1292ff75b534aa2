package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// runCA dispatches "tlsbridge ca <subcommand>".
func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, caUsage)
		return fmt.Errorf("ca: missing subcommand (init, import, export, install, uninstall, info): %w", errUsage)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, caUsage)
		return nil
	case "init":
		return runCAInit(args[1:], stdout, stderr)
	case "export":
		return runCAExport(args[1:], stdout, stderr)
	case "info":
		return runCAInfo(args[1:], stdout, stderr)
	case "install":
		return runCAInstall(args[1:], stdout, stderr)
	case "uninstall":
		return runCAUninstall(args[1:], stdout, stderr)
	case "import":
		return runCAImport(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, caUsage)
	return fmt.Errorf("ca: unknown subcommand %q: %w", args[0], errUsage)
}

// runCAInit creates the CA; -force replaces an existing one.
func runCAInit(args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("ca init", stderr)
	cf.register(fs)
	force := fs.Bool("force", false, "replace an existing CA (apps that trust the old one must trust the new one)")
	keyName := fs.String("key", "rsa", "CA key type: rsa (RSA-2048, every client) or ecdsa (P-256, modern clients only)")
	if err := parseFlags(fs, args, 0); err != nil {
		return ignoreHelp(err)
	}
	pol, err := cf.loadPolicy()
	if err != nil {
		return err
	}
	key, err := ca.ParseKeyType(*keyName)
	if err != nil {
		return fmt.Errorf("ca init: -key: %w", err)
	}
	dir, err := ca.Dir(cf.caDir, pol.CA.Dir)
	if err != nil {
		return err
	}
	if *force {
		if err := backupForReplace(dir, stdout); err != nil {
			return fmt.Errorf("ca init: %w", err)
		}
	}
	a, err := ca.Create(dir, ca.Options{Key: key, PermittedHosts: pol.CA.PermittedHosts}, *force)
	if err != nil {
		return fmt.Errorf("ca init: %w (use -force to replace an existing CA)", err)
	}
	fmt.Fprintf(stdout, "created CA in %s\n  certificate %s\n  key         %s (mode 0600)\n  sha256      %s\nnext: tlsbridge ca install, or give apps the file from tlsbridge ca export\n",
		a.Dir, a.CertPath(), a.KeyPath(), a.Fingerprint())
	warnPermissions(stdout, a.Dir) // an existing directory keeps its mode
	return nil
}

// runCAExport writes the CA certificate as PEM (default) or DER.
func runCAExport(args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("ca export", stderr)
	cf.register(fs)
	der := fs.Bool("der", false, "write DER instead of PEM (Windows, Android, some devices)")
	out := fs.String("out", "", "write to this file instead of standard output")
	if err := parseFlags(fs, args, 0); err != nil {
		return ignoreHelp(err)
	}
	a, err := loadCA(cf)
	if err != nil {
		return err
	}
	// What apps trust: the root, for an imported sub-CA.
	data := a.RootPEM()
	if *der {
		data = a.Root().Raw
	}
	if *out == "" {
		_, err = stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("ca export: %w", err)
	}
	return nil
}

// runCAInfo prints what a person checks about the CA.
func runCAInfo(args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("ca info", stderr)
	cf.register(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return ignoreHelp(err)
	}
	a, from, err := loadCAFrom(cf)
	if err != nil {
		return err
	}
	c := a.Cert
	fmt.Fprintf(stdout, "directory    %s (%s)\n", a.Dir, describeCADir(from))
	fmt.Fprintf(stdout, "certificate  %s\nkey          %s\nsubject      %s\nkey type     %s\nsha256       %s\nvalid        %s to %s",
		a.CertPath(), a.KeyPath(), c.Subject, keyDescription(c), a.Fingerprint(),
		c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
	if left := time.Until(c.NotAfter); left < expiryWarning {
		fmt.Fprintf(stdout, " (expires in %d days: run tlsbridge ca init -force)", int(left.Hours()/24))
	}
	fmt.Fprintln(stdout)
	if names := permitted(c); names != "" {
		fmt.Fprintf(stdout, "permitted    %s\n", names)
	} else {
		fmt.Fprintln(stdout, "permitted    any name (no name constraints; see [ca] permitted_hosts)")
	}
	fmt.Fprintf(stdout, "path length  %s\nleaf signing %s\n", pathLen(c), a.ECDSAIssuer().Explain())
	if len(a.Chain()) > 0 {
		fmt.Fprintf(stdout, "chain        %s\nroot         %s (apps trust this root; ca install and ca export use it)\n  sha256     %s\n",
			describeChain(a), a.Root().Subject, a.RootFingerprint())
	}
	fmt.Fprintf(stdout, "trusted in   %s\n", trustedIn(a))
	warnPermissions(stdout, a.Dir)
	return nil
}

// describeCADir says where the CA directory came from, and what the
// default is on this OS: "default on this OS: $XDG_DATA_HOME/tlsbridge,
// else ~/.local/share/tlsbridge".
func describeCADir(from string) string {
	if from == "default" {
		return "the default on this OS: " + ca.DefaultDirHelp
	}
	return "from " + from + "; the default on this OS is " + ca.DefaultDirHelp
}

// warnPermissions prints a WARNING line, with the chmod that fixes it, for
// each way other users could read the CA key or replace the CA in dir;
// `tlsbridge run` refuses to start until they are fixed.
func warnPermissions(w io.Writer, dir string) {
	err := ca.CheckPermissions(dir)
	if err == nil {
		return
	}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintf(w, "WARNING      %s (tlsbridge run refuses to start until then)\n", line)
	}
}

func loadCA(cf commonFlags) (*ca.Authority, error) {
	a, _, err := loadCAFrom(cf)
	return a, err
}

// loadCAFrom is loadCA, and also says where the CA directory came from
// (ca.DirFrom).
func loadCAFrom(cf commonFlags) (*ca.Authority, string, error) {
	pol, err := cf.loadPolicy()
	if err != nil {
		return nil, "", err
	}
	dir, from, err := ca.DirFrom(cf.caDir, pol.CA.Dir)
	if err != nil {
		return nil, "", err
	}
	a, err := ca.Load(dir)
	if err != nil {
		if errors.Is(err, ca.ErrCANotFound) {
			return nil, "", fmt.Errorf("%w (create it with: tlsbridge ca init -ca-dir %s, or use your own: tlsbridge ca import -ca-dir %[2]s CERT KEY)", err, quoteArg(dir))
		}
		return nil, "", fmt.Errorf("%w (fix it, or replace the CA with: tlsbridge ca init -force -ca-dir %s)", err, quoteArg(dir))
	}
	return a, from, nil
}

func keyDescription(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return c.PublicKeyAlgorithm.String()
}

// pathLen is the CA's basicConstraints pathLenConstraint; crypto/x509
// parses an absent one as -1.
func pathLen(c *x509.Certificate) string {
	if c.MaxPathLen < 0 {
		return "unlimited"
	}
	return strconv.Itoa(c.MaxPathLen)
}

func permitted(c *x509.Certificate) string {
	var names []string
	names = append(names, c.PermittedDNSDomains...)
	for _, n := range c.PermittedIPRanges {
		names = append(names, n.String())
	}
	return strings.Join(names, ", ")
}
