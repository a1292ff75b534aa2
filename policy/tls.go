package policy

import (
	"crypto/tls"
	"fmt"
)

// tlsVersions lists the versions a config may name, oldest first. SSL 3.0
// is absent on purpose: crypto/tls removed it in Go 1.14.
var tlsVersions = [...]struct {
	name string
	v    uint16
}{
	{"1.0", tls.VersionTLS10},
	{"1.1", tls.VersionTLS11},
	{"1.2", tls.VersionTLS12},
	{"1.3", tls.VersionTLS13},
}

// wantTLSVersions is the accepted-values part of every version error.
const wantTLSVersions = "want 1.0, 1.1, 1.2 or 1.3"

// ParseTLSVersion parses a config version string ("1.0", "1.1", "1.2" or
// "1.3") into its crypto/tls constant. The error wraps [ErrTLSVersion].
func ParseTLSVersion(s string) (uint16, error) {
	for _, tv := range tlsVersions {
		if s == tv.name {
			return tv.v, nil
		}
	}
	return 0, fmt.Errorf("%q is not a TLS version (%s): %w", s, wantTLSVersions, ErrTLSVersion)
}

// TLSVersionName returns the config spelling of a crypto/tls version
// constant: 0x0301 is "1.0". Unknown values print as "0x%04x", so a log line
// never hides what the peer sent.
func TLSVersionName(v uint16) string {
	for _, tv := range tlsVersions {
		if v == tv.v {
			return tv.name
		}
	}
	return fmt.Sprintf("0x%04x", v)
}
