package policy

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/tlsbridge/tlsbridge/internal/hostname"
)

// Match returns the first rule whose hosts and ports match host and port,
// or p.Default when none does. host may be un-normalized ("API.example.com.",
// "[::1]", "10.0.0.1"); it is normalized like the globs were. Match is pure:
// no I/O, no logging, and no allocation for already normalized names and IP
// literals, because it runs for every CONNECT.
func (p *Policy) Match(host string, port int) *Rule {
	h := matchHostOf(host)
	for _, r := range p.Rules {
		if r.matches(h, port) {
			return r
		}
	}
	return p.Default
}

// matchHost is a CONNECT host ready for matching: a normalized name, or an
// IP address.
type matchHost struct {
	name string
	ip   netip.Addr // valid when the host is an IP literal
}

// matchHostOf normalizes host. Hosts that are already normalized (names
// and IP literals, as bump passes them) take a fast path that does not
// allocate; the result is the same as the slow path (FuzzMatch checks
// this). A host that cannot be normalized matches only "*".
func matchHostOf(host string) matchHost {
	if hostname.IsPlainASCII(host) {
		if hostname.IsDigitsAndDots(host) {
			if ip, err := netip.ParseAddr(host); err == nil {
				return matchHost{ip: ip}
			}
		}
		return matchHost{name: host}
	}
	if strings.IndexByte(host, ':') >= 0 {
		if ip, err := netip.ParseAddr(host); err == nil {
			return matchHost{ip: ip.Unmap().WithZone("")}
		}
	}
	return slowMatchHostOf(host)
}

// slowMatchHostOf is matchHostOf without the fast paths.
func slowMatchHostOf(host string) matchHost {
	n, err := hostname.Normalize(host)
	if err != nil {
		return matchHost{}
	}
	if ip, err := netip.ParseAddr(n); err == nil {
		return matchHost{ip: ip}
	}
	return matchHost{name: n}
}

// matches reports whether r applies to host h and port.
func (r *Rule) matches(h matchHost, port int) bool {
	if len(r.Ports) > 0 && !slices.Contains(r.Ports, port) {
		return false
	}
	return r.match.matches(h)
}

// matches reports whether h is one of m's globs.
func (m *hostMatcher) matches(h matchHost) bool {
	if m.all {
		return true
	}
	if h.ip.IsValid() {
		for _, p := range m.prefixes {
			if p.Contains(h.ip) {
				return true
			}
		}
		return false
	}
	if _, ok := m.names[h.name]; ok {
		return true
	}
	for _, s := range m.suffixes {
		// "*.example.com" matches any depth below example.com, but not
		// example.com itself: the name must be longer than the suffix.
		if len(h.name) > len(s) && strings.HasSuffix(h.name, s) {
			return true
		}
	}
	return false
}
