package bump

import (
	"crypto/tls"
	"io"
	"testing"
)

// 3DES is offered only to apps whose ClientHello tops out below TLS 1.2
// (Windows XP's SChannel has nothing else); a TLS 1.2 app that offers only
// 3DES is refused (SWEET32, issue 13), on a bumped CONNECT and on TLS to the
// proxy port alike. Real handshakes, Go's client playing each app.
func TestTripleDESOnlyBelowTLS12(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	const (
		rsa3DES   = tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA
		ecdhe3DES = tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
		rsaAES    = tls.TLS_RSA_WITH_AES_128_CBC_SHA
	)
	for _, tt := range []struct {
		name     string
		version  uint16
		suites   []uint16
		proxyTLS bool
		want     uint16 // the suite the app gets; 0: the handshake is refused
	}{
		{"tls12/rsa-3des-only", tls.VersionTLS12, []uint16{rsa3DES}, false, 0},
		{"tls12/ecdhe-rsa-3des-only", tls.VersionTLS12, []uint16{ecdhe3DES}, false, 0},
		{"tls12/both-3des-only", tls.VersionTLS12, []uint16{ecdhe3DES, rsa3DES}, false, 0},
		{"tls12/3des-first-then-aes", tls.VersionTLS12, []uint16{rsa3DES, rsaAES}, false, rsaAES},
		{"tls12-to-proxy-port/rsa-3des-only", tls.VersionTLS12, []uint16{rsa3DES}, true, 0},
		{"tls10/rsa-3des-only", tls.VersionTLS10, []uint16{rsa3DES}, false, rsa3DES},
		{"tls10/ecdhe-rsa-3des-only", tls.VersionTLS10, []uint16{ecdhe3DES}, false, ecdhe3DES},
		{"tls11/rsa-3des-only", tls.VersionTLS11, []uint16{rsa3DES}, false, rsa3DES},
		{"tls10-to-proxy-port/rsa-3des-only", tls.VersionTLS10, []uint16{rsa3DES}, true, rsa3DES},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := p.legacyClient(t, clientOpts{version: tt.version, suites: tt.suites, proxyTLS: tt.proxyTLS})
			resp, err := client.Get("https://origin.test/")
			if tt.want == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("TLS %x app offering only %v: got %s with %s, want the handshake refused",
						tt.version, suiteNames(tt.suites), resp.Status, tls.CipherSuiteName(resp.TLS.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("TLS %x app offering %v: %v, want %s", tt.version, suiteNames(tt.suites), err, tls.CipherSuiteName(tt.want))
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 || resp.TLS.Version != tt.version || resp.TLS.CipherSuite != tt.want {
				t.Errorf("got %s over %x with %s, want 200 over %x with %s", resp.Status, resp.TLS.Version,
					tls.CipherSuiteName(resp.TLS.CipherSuite), tt.version, tls.CipherSuiteName(tt.want))
			}
		})
	}
}

func suiteNames(ids []uint16) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = tls.CipherSuiteName(id)
	}
	return names
}
