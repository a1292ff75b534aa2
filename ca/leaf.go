package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/hostname"
)

// DefaultLeafValidity is the leaf lifetime when none is given: a week is far
// below the 398-day limit browsers enforce (Apple, Chrome) and short enough
// that a leaked leaf is soon useless, while a long-running proxy re-signs a
// host at most once a week.
const DefaultLeafValidity = 7 * 24 * time.Hour

// ubCommonName is the maximum length of a subject common name (RFC 5280
// Appendix A, ub-common-name); longer DNS names go in the SAN only.
const ubCommonName = 64

// Issue signs a leaf certificate for names (DNS names, IP literals, or
// "*."-prefixed wildcard names) with the given public key, valid from an
// hour ago until validity from now (DefaultLeafValidity if zero), but never
// past the CA's own expiry. Names are normalized (see
// internal/hostname), de-duplicated, and the first becomes the subject
// common name. It returns the parsed certificate and its DER encoding.
func (a *Authority) Issue(names []string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, []byte, error) {
	norm, err := normalizeNames(names)
	if err != nil {
		return nil, nil, err
	}
	return a.issue(a.root(), norm, pub, time.Now(), validity)
}

// normalizeNames normalizes and de-duplicates names, keeping their order.
func normalizeNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, ErrNoNames
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		h, err := normalizeName(n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, h) { // lists are short: no map needed
			out = append(out, h)
		}
	}
	return out, nil
}

// normalizeName normalizes one DNS name, IP literal or "*."-prefixed
// wildcard name.
func normalizeName(n string) (string, error) {
	if rest, ok := strings.CutPrefix(n, "*."); ok {
		h, err := hostname.Normalize(rest)
		if err != nil {
			return "", fmt.Errorf("leaf name %q: %w", n, err)
		}
		if hostname.IsIP(h) {
			return "", fmt.Errorf("leaf name %q: wildcard IP address", n)
		}
		return "*." + h, nil
	}
	h, err := hostname.Normalize(n)
	if err != nil {
		return "", fmt.Errorf("leaf name %q: %w", n, err)
	}
	return h, nil
}

// issuer is a CA certificate and the key that signs with it: the
// Authority's own (root), or the in-memory intermediate a Cache makes for
// ECDSA leaves (intermediate.go).
type issuer struct {
	cert   *x509.Certificate
	signer crypto.Signer
}

// root returns the Authority itself as an issuer.
func (a *Authority) root() issuer { return issuer{cert: a.Cert, signer: a.signer} }

// issue signs, with iss, a leaf for already-normalized names at time now.
// Expiry and name constraints are checked against the Authority's own
// certificate, which every chain ends in (an intermediate copies its name
// constraints and expires with it).
func (a *Authority) issue(iss issuer, names []string, pub crypto.PublicKey, now time.Time, validity time.Duration) (*x509.Certificate, []byte, error) {
	if len(names) == 0 {
		return nil, nil, ErrNoNames
	}
	if validity <= 0 {
		validity = DefaultLeafValidity
	}
	if !now.Before(a.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("sign leaf for %q: CA %q expired on %s: %w (run `tlsbridge ca init -force` and install the new CA)",
			names[0], a.Cert.Subject.CommonName, a.Cert.NotAfter.Format(time.DateOnly), ErrCAExpired)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Backdated for clients whose clocks run behind; clamped to the
		// issuer, since a leaf outliving its issuer fails in strict
		// verifiers.
		NotBefore: now.Add(-backdate),
		NotAfter:  minTime(now.Add(validity), iss.cert.NotAfter),
		// serverAuth only: these leaves must never be usable as client
		// certificates or for code signing.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // cA=FALSE, stated explicitly
		// Ties the leaf to its issuer's key even if several tlsbridge CAs
		// with similar subjects are installed (RFC 5280 §4.2.1.1).
		AuthorityKeyId: iss.cert.SubjectKeyId,
	}
	if cn := names[0]; len(cn) <= ubCommonName && !(hostname.IsIP(cn) && hasDNSConstraints(a.Cert)) {
		// Clients from before RFC 2818 was enforced (and some current
		// embedded stacks) match the host against the CN, not the SANs.
		// Not for an IP literal under DNS name constraints: OpenSSL checks
		// the CN of a leaf without DNS SANs against them as a host name
		// ("permitted subtree violation" for 127.0.0.1 under example.com).
		tmpl.Subject = pkix.Name{CommonName: cn}
	}
	for _, n := range names {
		if err := checkPermitted(a.Cert, strings.TrimPrefix(n, "*.")); err != nil {
			return nil, nil, fmt.Errorf("sign leaf for %q: %w", names[0], err)
		}
		// RFC 6125: IP literals go in iPAddress SANs, names in dNSName
		// SANs; a client never matches an IP against a dNSName.
		if ip := net.ParseIP(n); ip != nil {
			if ip4 := ip.To4(); ip4 != nil {
				ip = ip4
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		// KeyEncipherment: with RSA key exchange (TLS_RSA_WITH_* suites,
		// all Windows XP and Java 6 offer) the client encrypts the
		// premaster secret to this key (RFC 5246 §7.4.7.1).
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey, ed25519.PublicKey:
		// ECDHE only signs with the key.
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	default:
		return nil, nil, fmt.Errorf("sign leaf for %q: public key %T: %w", names[0], pub, ErrUnsupportedKey)
	}
	if _, ok := iss.cert.PublicKey.(*rsa.PublicKey); ok {
		// SHA-256 with PKCS #1 v1.5, stated explicitly: it is Go's
		// default today, and what every client back to Windows XP SP3
		// verifies; RSA-PSS or SHA-1 would not do.
		tmpl.SignatureAlgorithm = x509.SHA256WithRSA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.cert, pub, iss.signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign leaf for %q: %w", names[0], err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse leaf for %q: %w", names[0], err)
	}
	return cert, der, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// hasDNSConstraints reports whether c constrains DNS names (RFC 5280
// 4.2.1.10).
func hasDNSConstraints(c *x509.Certificate) bool {
	return len(c.PermittedDNSDomains) > 0 || len(c.ExcludedDNSDomains) > 0
}
