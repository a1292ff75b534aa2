// Package hostname normalizes host names the same way for policy matching
// and certificate caching, so that "API.Example.com." and "api.example.com"
// are one host everywhere in tlsbridge.
package hostname

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// ErrEmpty is returned for an empty host name.
var ErrEmpty = errors.New("empty host name")

// ErrEmptyLabel is returned for a name with an empty label ("a..b", ".a").
var ErrEmptyLabel = errors.New("empty label in host name")

// lookup is the IDNA profile browsers use for host names (UTS #46,
// transitional processing off), so a Unicode name and its punycode form
// normalize to the same ASCII string.
var lookup = idna.Lookup

// Normalize returns the canonical form of host: a port (if any) and the
// trailing dot are stripped, IPv6 brackets removed, IP literals printed in
// their canonical form, and names lower-cased and converted to ASCII (IDNA).
func Normalize(host string) (string, error) {
	h := host
	if strings.HasPrefix(h, "[") {
		// "[::1]" or "[::1]:443".
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		} else {
			h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		}
	} else if strings.Count(h, ":") == 1 {
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
	}
	// Only a colon or nothing but digits and dots can be an IP literal; the
	// check keeps ParseAddr (and its error) off the path of every name.
	if strings.IndexByte(h, ':') >= 0 || IsDigitsAndDots(h) {
		if ip, err := netip.ParseAddr(h); err == nil {
			return ip.Unmap().WithZone("").String(), nil
		}
	}
	h = strings.TrimSuffix(h, ".") // the root label of a fully qualified name
	if h == "" {
		return "", ErrEmpty
	}
	if strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return "", fmt.Errorf("host name %q: %w", host, ErrEmptyLabel)
	}
	h = strings.ToLower(h)
	if IsPlainASCII(h) {
		// Letters, digits, '-', '.' and '_' need no IDNA tables. The '_'
		// is outside IDNA's STD3 rules but real internal names carry it
		// (and Go's x509 matches it), so policy, leaf names and name
		// constraints all accept it here, in the one place that decides.
		return h, nil
	}
	ascii, err := lookup.ToASCII(h)
	if err != nil {
		return "", fmt.Errorf("host name %q: %w", host, err)
	}
	// IDNA can map a label to nothing ("xn--"): the result must still be a
	// name, and one that normalizes to itself.
	if ascii == "" || strings.HasPrefix(ascii, ".") || strings.HasSuffix(ascii, ".") || strings.Contains(ascii, "..") {
		return "", fmt.Errorf("host name %q: %w", host, ErrEmptyLabel)
	}
	if _, err := netip.ParseAddr(ascii); err == nil {
		return "", fmt.Errorf("host name %q: IDNA maps it to the IP literal %q", host, ascii)
	}
	return ascii, nil
}

// IsPlainASCII reports whether s is a name that is its own normal form
// without IDNA: only a-z, 0-9, '.', '-' and '_', no empty label, and no
// hyphen at a label's ends or doubled (punycode "xn--" and the forms IDNA
// rejects go through IDNA).
func IsPlainASCII(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") ||
		strings.Contains(s, "--") || strings.Contains(s, ".-") || strings.Contains(s, "-.") ||
		s[0] == '-' || s[len(s)-1] == '-' {
		return false // empty labels, and hyphen forms IDNA must judge ("xn--", "-a", "a-")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// IsDigitsAndDots reports whether s has only digits and dots, the only
// names besides those with a colon that can parse as an IP literal.
func IsDigitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// IsIP reports whether a normalized host is an IP literal.
func IsIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}
