package bump

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/sirupsen/logrus"
)

// BenchmarkBumpHandshake is a full legacy connection through the proxy:
// CONNECT, a TLS 1.0 handshake with the app (ECDHE-ECDSA), a TLS 1.2+
// handshake with the origin, one GET. "warm" reuses one host (cached leaf);
// "cold" uses a new host name each time (one mint per iteration); "rsa"
// is "warm" for an app offering only RSA key exchange (AES128-SHA), the
// handshake the legacy engine (-tags openssl) makes cheaper.
func BenchmarkBumpHandshake(b *testing.B) {
	o := newOrigin(b, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(b, pinConfig(o, "*.bench.test", "bump", ""), quietLog)
	for _, mode := range []string{"warm", "cold", "rsa"} {
		b.Run(mode, func(b *testing.B) {
			opts := clientOpts{version: tls.VersionTLS10}
			if mode == "rsa" {
				opts.suites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}
			}
			client := p.legacyClient(b, opts)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				host := "warm.bench.test"
				if mode == "cold" {
					i++
					host = fmt.Sprintf("h%d.bench.test", i)
				}
				resp, err := client.Get("https://" + host + "/")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkKeepAliveRequest is the per-request cost on an established bumped
// connection (TLS 1.0 app, keep-alive): one exchange through the HTTP/1.1
// intermediary on a pooled upstream connection.
func BenchmarkKeepAliveRequest(b *testing.B) {
	o := newOrigin(b, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(b, pinConfig(o, "origin.test", "bump", ""), quietLog)
	client := p.legacyClient(b, clientOpts{version: tls.VersionTLS10})
	client.Transport.(*http.Transport).DisableKeepAlives = false
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get("https://origin.test/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// quietLog runs a benchmark at level warn, as the bench-vs-squid config
// does: access lines are measured apart from the relay.
func quietLog(c *Config) { c.Log.Logger.SetLevel(logrus.WarnLevel) }
