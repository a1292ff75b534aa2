package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/tlsbridge/tlsbridge/internal/hostname"
)

// loopbackDNS and loopbackCIDRs are always permitted in a constrained CA:
// the proxy's own certificate (TLS on the proxy port) is valid for
// localhost, 127.0.0.1 and ::1, and intercepting loopback gives an attacker
// nothing they could not do on the host already.
var (
	loopbackDNS   = []string{"localhost"}
	loopbackCIDRs = []string{"127.0.0.0/8", "::1/128"}
)

// PermittedHost is one parsed permitted_hosts entry: a DNS domain or an IP
// range. Parse one with [ParsePermittedHost]; the zero value is not a
// permitted host.
type PermittedHost struct {
	// domain is a normalized DNS name (lower case, IDNA→ASCII); a leading
	// "." means subdomains only, as RFC 5280 and crypto/x509 read it. ""
	// when prefix is set.
	domain string
	// prefix is the permitted IP range, a single address as /32 or /128.
	prefix netip.Prefix
}

// ParsePermittedHost parses a permitted_hosts entry: a domain
// ("example.com" permits it and its subdomains, ".example.com" only its
// subdomains), an IP address or a CIDR ("10.0.0.0/8"). Names are
// normalized like leaf names (lower case, IDNA→ASCII). The error wraps
// [ErrBadPermittedHost] and says what is wrong without repeating s, so the
// caller can name the key that holds it.
func ParsePermittedHost(s string) (PermittedHost, error) {
	// IP ranges constrain IP-literal hosts (the CA's IPAddresses subtree).
	if p, err := netip.ParsePrefix(s); err == nil {
		return PermittedHost{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return PermittedHost{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	dot := strings.HasPrefix(s, ".")
	name := strings.TrimPrefix(s, ".")
	if strings.ContainsAny(name, "*:/") {
		return PermittedHost{}, permittedHostError("not a domain name, IP address or CIDR (no wildcards or ports)")
	}
	n, err := hostname.Normalize(name)
	switch {
	case errors.Is(err, hostname.ErrEmpty):
		return PermittedHost{}, permittedHostError("empty host name")
	case err != nil:
		return PermittedHost{}, permittedHostError("not a valid host name")
	}
	if dot {
		n = "." + n
	}
	return PermittedHost{domain: n}, nil
}

// String returns the normalized entry: the domain (with its leading "."
// if any), the IP address, or the IP range in CIDR form.
func (h PermittedHost) String() string {
	if h.prefix.IsSingleIP() {
		return h.prefix.Addr().String()
	}
	if h.prefix.IsValid() {
		return h.prefix.String()
	}
	return h.domain
}

// permittedHostError is a ParsePermittedHost failure: the reason, matching
// ErrBadPermittedHost.
type permittedHostError string

func (e permittedHostError) Error() string { return string(e) }
func (e permittedHostError) Unwrap() error { return ErrBadPermittedHost }

// applyPermittedHosts turns Options.PermittedHosts into name constraints on
// a CA template.
func applyPermittedHosts(tmpl *x509.Certificate, hosts []PermittedHost) {
	var dns []string
	var ips []*net.IPNet
	for _, h := range hosts {
		if h.prefix.IsValid() {
			ips = append(ips, prefixToIPNet(h.prefix))
		} else if h.domain != "" {
			dns = append(dns, h.domain)
		}
	}
	dns = append(dns, loopbackDNS...)
	for _, c := range loopbackCIDRs {
		ips = append(ips, prefixToIPNet(netip.MustParsePrefix(c)))
	}
	// Both lists are always non-empty, so neither name form is left
	// unconstrained: RFC 5280 applies permitted subtrees only to the name
	// forms they list, so permitting just DNS names would leave every IP
	// address signable.
	tmpl.PermittedDNSDomains = dns
	tmpl.PermittedIPRanges = ips
	// Critical, as RFC 5280 §4.2.1.10 requires: a client that does not
	// understand name constraints must reject the CA rather than ignore
	// the restriction. (Some very old clients therefore reject a
	// constrained CA outright; constraints are opt-in for that reason.)
	tmpl.PermittedDNSDomainsCritical = true
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

// checkPermitted reports whether the CA's name constraints (its own or an
// imported CA's) allow a normalized name, so Issue can refuse a leaf that
// no client would accept.
func checkPermitted(ca *x509.Certificate, name string) error {
	if ip := net.ParseIP(name); ip != nil {
		if len(ca.PermittedIPRanges) > 0 && !anyContains(ca.PermittedIPRanges, ip) {
			return fmt.Errorf("%q: %w", name, ErrNotPermitted)
		}
		if anyContains(ca.ExcludedIPRanges, ip) {
			return fmt.Errorf("%q: %w", name, ErrNotPermitted)
		}
		return nil
	}
	if len(ca.PermittedDNSDomains) > 0 && !anyDomainMatch(ca.PermittedDNSDomains, name) {
		return fmt.Errorf("%q: %w (permitted: %s)", name, ErrNotPermitted, strings.Join(ca.PermittedDNSDomains, ", "))
	}
	if anyDomainMatch(ca.ExcludedDNSDomains, name) {
		return fmt.Errorf("%q: %w", name, ErrNotPermitted)
	}
	return nil
}

func anyContains(nets []*net.IPNet, ip net.IP) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// anyDomainMatch follows crypto/x509's matchDomainConstraint: "example.com"
// matches itself and its subdomains, ".example.com" only subdomains, ""
// everything. A wildcard leaf name "*.example.com" is checked as a
// subdomain.
func anyDomainMatch(constraints []string, name string) bool {
	name = strings.ToLower(name)
	for _, c := range constraints {
		c = strings.ToLower(c)
		switch {
		case c == "":
			return true
		case strings.HasPrefix(c, "."):
			if strings.HasSuffix(name, c) {
				return true
			}
		case name == c || strings.HasSuffix(name, "."+c):
			return true
		}
	}
	return false
}

// Permits returns nil if the CA's name constraints allow a leaf for name (a
// host name or IP literal, normalized like Issue normalizes it; a port is
// ignored), and otherwise an error wrapping ErrNotPermitted that names the
// [ca] permitted_hosts setting. An unconstrained CA permits every name.
// The proxy asks before answering a CONNECT, so a host the CA cannot sign
// for gets a 403 instead of a failed handshake.
func (a *Authority) Permits(name string) error {
	c := a.Cert
	if len(c.PermittedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedDNSDomains)+len(c.ExcludedIPRanges) == 0 {
		return nil // unconstrained (the default): every name is permitted
	}
	n, err := hostname.Normalize(name)
	if err != nil {
		return fmt.Errorf("check %q against the CA's name constraints: %w", name, err)
	}
	if err := checkPermitted(a.Cert, n); err != nil {
		return fmt.Errorf("%w: the CA was created with [ca] permitted_hosts; to intercept this host, add it there and run tlsbridge ca init -force, or give the host a rule with action = \"tunnel\"", err)
	}
	return nil
}
