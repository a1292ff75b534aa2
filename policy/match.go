package policy

import (
	"net"
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

// matchHostOf normalizes host. Hosts that are already normalized take a
// fast path that does not allocate; the result is the same as the slow path
// (FuzzMatch checks this). A host that cannot be normalized is matched
// lower-cased, so it can only match "*" or an identical exact glob.
func matchHostOf(host string) matchHost {
	if isHostChars(host) && host[len(host)-1] != '.' {
		if isDigitsAndDots(host) {
			if ip, err := netip.ParseAddr(host); err == nil {
				return matchHost{ip: ip}
			}
		}
		return matchHost{name: host}
	}
	return slowMatchHostOf(host)
}

// slowMatchHostOf is matchHostOf without the fast path.
func slowMatchHostOf(host string) matchHost {
	n, err := hostname.Normalize(host)
	if err != nil {
		return matchHost{name: fallbackName(stripPort(host))}
	}
	if ip, err := netip.ParseAddr(n); err == nil {
		return matchHost{ip: ip}
	}
	if !isHostChars(n) {
		// hostname.Normalize only returns ASCII names; be safe anyway.
		n = strings.ToLower(n)
	}
	return matchHost{name: n}
}

func isDigitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
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

// stripPort removes a port and IPv6 brackets the way hostname.Normalize
// does, for hosts it rejects.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if h, _, err := net.SplitHostPort(host); err == nil {
			return h
		}
		return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.Count(host, ":") == 1 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			return h
		}
	}
	return host
}
