package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tlsbridge/tlsbridge/internal/hostname"
)

// hostMatcher is a compiled hosts list: every glob normalized once, so that
// matching a host costs map and suffix lookups and no allocation.
type hostMatcher struct {
	all      bool                // "*"
	names    map[string]struct{} // exact normalized names
	suffixes []string            // ".example.com" for "*.example.com"
	prefixes []netip.Prefix      // IP literals (as /32 or /128) and CIDRs
}

// wantGlob ends the message about a glob that is neither a name, a
// wildcard, an IP nor a CIDR; the accepted forms follow.
const wantGlob = `want a name ("api.example.com"), a leading wildcard ("*.example.com"), "*", an IP or a CIDR ("10.0.0.0/8")`

// compileHosts compiles globs; the error joins one message per bad glob,
// without key: the caller adds it.
func compileHosts(globs []string) (hostMatcher, error) {
	var m hostMatcher
	var errs []error
	for _, g := range globs {
		if err := m.add(g); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}

// add compiles one glob into m.
func (m *hostMatcher) add(glob string) error {
	g := strings.TrimSpace(glob)
	switch {
	case g == "":
		return fmt.Errorf("empty host glob (%s)", wantGlob)
	case g == "*":
		m.all = true
		return nil
	case strings.HasPrefix(g, "*."):
		rest := g[2:]
		if strings.Contains(rest, "*") {
			return fmt.Errorf("%q: '*' is only allowed as the whole first label (%s)", glob, wantGlob)
		}
		if _, err := netip.ParseAddr(rest); err == nil {
			return fmt.Errorf("%q: a wildcard cannot apply to an IP address; use a CIDR such as \"10.0.0.0/8\"", glob)
		}
		if strings.Contains(rest, ":") {
			return fmt.Errorf("%q: host globs take no port; list ports in the rule's ports key", glob)
		}
		name, err := normalizeName(rest)
		if err != nil {
			return fmt.Errorf("%q: %v (%s)", glob, err, wantGlob)
		}
		m.suffixes = append(m.suffixes, "."+name)
		return nil
	case strings.Contains(g, "*"):
		return fmt.Errorf("%q: '*' is only allowed alone or as the whole first label, as in \"*.example.com\" (%s)", glob, wantGlob)
	case strings.Contains(g, "/"):
		pfx, err := netip.ParsePrefix(g)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR (%s)", glob, wantGlob)
		}
		m.prefixes = append(m.prefixes, unmapPrefix(pfx))
		return nil
	}
	if ip, ok := parseIPLiteral(g); ok {
		m.prefixes = append(m.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	if strings.Contains(g, ":") {
		return fmt.Errorf("%q: host globs take no port; list ports in the rule's ports key", glob)
	}
	name, err := normalizeName(g)
	if err != nil {
		return fmt.Errorf("%q: %v (%s)", glob, err, wantGlob)
	}
	if m.names == nil {
		m.names = make(map[string]struct{})
	}
	m.names[name] = struct{}{}
	return nil
}

// parseIPLiteral parses "10.0.0.1", "::1", "[::1]" or "fe80::1%eth0" into
// an unmapped address without zone, the form hostname.Normalize prints.
func parseIPLiteral(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// unmapPrefix turns "::ffff:10.0.0.0/104" into "10.0.0.0/8" so that it
// matches the unmapped addresses Normalize produces, and masks host bits.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	addr := p.Addr().WithZone("")
	if addr.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(addr.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(addr, p.Bits()).Masked()
}

// normalizeName normalizes a DNS name with hostname.Normalize, the one
// place that decides what a host name is for policy, leaves and name
// constraints alike.
func normalizeName(s string) (string, error) {
	n, err := hostname.Normalize(s)
	switch {
	case errors.Is(err, hostname.ErrEmpty):
		return "", errors.New("empty host name")
	case err != nil:
		return "", errors.New("not a valid host name")
	}
	return n, nil
}
