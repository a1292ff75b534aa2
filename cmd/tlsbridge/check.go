package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

// errLegacyFails is check's non-zero exit: a legacy app would not get through.
var errLegacyFails = errors.New("check: a TLS 1.0 app would not reach this server through tlsbridge (see above)")

// runCheck is "tlsbridge check HOST[:PORT]": connect to the upstream the way
// the proxy would and explain what a legacy app would get.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("check", stderr)
	cf.register(fs)
	if err := parseFlags(fs, args, 1); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("check: want one HOST[:PORT], e.g. tlsbridge check api.example.com:443")
	}
	host, port, err := splitHostPort(fs.Arg(0))
	if err != nil {
		return err
	}
	pol, err := cf.loadPolicy()
	if err != nil {
		return err
	}
	permits, note, err := caPermits(cf.caDir, pol)
	if err != nil {
		return err
	}
	r := bump.CheckWith(ctx, pol, host, port, bump.CheckOptions{Permits: permits})
	if _, err := r.WriteTo(stdout); err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintln(stdout, note)
	}
	if !r.LegacyOK() {
		return errLegacyFails
	}
	return nil
}

// caPermits returns the name-constraint check of the CA the proxy would
// sign with, so check refuses what the proxy refuses ([ca] permitted_hosts):
// the CA in the CA directory (its certificate is enough, so a user who
// cannot read the key still gets the answer), or, before the first run has
// created one, a CA made the way run would make it, in a temporary
// directory. note says when that happened.
func caPermits(flagDir string, pol *policy.Policy) (permits func(string) error, note string, err error) {
	dir, err := ca.Dir(flagDir, pol.CA.Dir)
	if err != nil {
		return nil, "", err
	}
	if a, err := ca.Load(dir); err == nil {
		return a.Permits, "", nil
	}
	if certPEM, err := os.ReadFile(filepath.Join(dir, ca.CertFile)); err == nil {
		block, _ := pem.Decode(certPEM)
		if block == nil {
			return nil, "", fmt.Errorf("check: %s holds no PEM certificate; fix the CA (tlsbridge ca info) first", filepath.Join(dir, ca.CertFile))
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("check: %s: %w; fix the CA (tlsbridge ca info) first", filepath.Join(dir, ca.CertFile), err)
		}
		return (&ca.Authority{Cert: cert}).Permits, "", nil
	}
	if len(pol.CA.PermittedHosts) == 0 {
		return nil, "", nil // run would create an unconstrained CA
	}
	tmp, err := os.MkdirTemp("", "tlsbridge-check-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	a, err := ca.Create(tmp, ca.Options{Key: ca.KeyECDSAP256, PermittedHosts: pol.CA.PermittedHosts}, false)
	if err != nil {
		return nil, "", fmt.Errorf("check: [ca] permitted_hosts: %w", err)
	}
	return a.Permits, fmt.Sprintf("(no CA in %s yet: checked against [ca] permitted_hosts, which the first run puts into the CA it creates)", dir), nil
}

// splitHostPort accepts "host", "host:port", "[v6]:port" and "v6".
func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return strings.Trim(s, "[]"), 443, nil // "host", "[v6]" or "v6"
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("check: %q: port %q is not 1-65535", s, p)
	}
	return host, port, nil
}
