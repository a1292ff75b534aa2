package bump

import (
	"crypto/tls"
	"strings"
	"testing"
)

// isECDHE's hand-written list says what the suites' names say.
func TestIsECDHE(t *testing.T) {
	for _, id := range legacyClientCipherSuites {
		if got, want := isECDHE(id), strings.HasPrefix(tls.CipherSuiteName(id), "TLS_ECDHE_"); got != want {
			t.Errorf("isECDHE(%s) = %v, want %v", tls.CipherSuiteName(id), got, want)
		}
	}
}

func TestLegacyTakes(t *testing.T) {
	engine := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA}
	hello := func(vers uint16, ext []uint16, suites ...uint16) *clientHello {
		return &clientHello{info: &tls.ClientHelloInfo{SupportedVersions: []uint16{vers}, CipherSuites: suites, Extensions: ext}}
	}
	tickets := []uint16{0, extSessionTicket}
	for _, tc := range []struct {
		name string
		h    *clientHello
		want bool
	}{
		{"sslv2", &clientHello{info: &tls.ClientHelloInfo{}, sslv2: true}, true},
		{"tls10-ecdhe-tickets", hello(tls.VersionTLS10, tickets, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA), false},
		{"tls10-ecdhe-no-tickets", hello(tls.VersionTLS10, nil, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA), true},
		{"tls10-rsa-only-tickets", hello(tls.VersionTLS10, tickets, tls.TLS_RSA_WITH_AES_128_CBC_SHA), true},
		{"tls10-3des-only", hello(tls.VersionTLS10, nil, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA), false},
		{"tls12-rsa-only", hello(tls.VersionTLS12, nil, tls.TLS_RSA_WITH_AES_128_CBC_SHA), false},
	} {
		if got := legacyTakes(tc.h, engine); got != tc.want {
			t.Errorf("%s: legacyTakes = %v, want %v", tc.name, got, tc.want)
		}
	}
}
