// Package catest provides throw-away certificate authorities for tests, like
// net/http/httptest provides servers: each call makes a fresh CA in the
// test's temporary directory, so tests never share a CA or touch the user's.
package catest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// New returns a new ECDSA P-256 CA stored in tb.TempDir(). P-256 keeps tests
// fast (an RSA-2048 CA key takes ~50 ms to generate); use NewWithOptions
// with ca.KeyRSA2048 to test what legacy clients see.
func New(tb testing.TB) *ca.Authority {
	tb.Helper()
	return NewWithOptions(tb, ca.Options{})
}

// NewWithOptions is like New with opts. Unlike ca.Create, a zero opts.Key
// means ca.KeyECDSAP256 here.
func NewWithOptions(tb testing.TB, opts ca.Options) *ca.Authority {
	tb.Helper()
	if opts.Key == 0 {
		opts.Key = ca.KeyECDSAP256
	}
	a, err := ca.Create(tb.TempDir(), opts, false)
	if err != nil {
		tb.Fatalf("catest: create CA: %v", err)
	}
	return a
}

// PermittedHosts parses hosts with ca.ParsePermittedHost for
// ca.Options.PermittedHosts, failing the test on a bad entry.
func PermittedHosts(tb testing.TB, hosts ...string) []ca.PermittedHost {
	tb.Helper()
	out := make([]ca.PermittedHost, 0, len(hosts))
	for _, h := range hosts {
		ph, err := ca.ParsePermittedHost(h)
		if err != nil {
			tb.Fatalf("catest: permitted host %q: %v", h, err)
		}
		out = append(out, ph)
	}
	return out
}

// NewCache returns a ca.Cache for a with default settings, closed when the
// test ends.
func NewCache(tb testing.TB, a *ca.Authority) *ca.Cache {
	tb.Helper()
	c, err := ca.NewCache(a, ca.CacheConfig{})
	if err != nil {
		tb.Fatalf("catest: new cache: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// ServerCert returns a certificate for an in-process origin server, valid
// for names (DNS names or IP literals; "127.0.0.1" if none), signed by a,
// with a fresh P-256 key. Certificate holds [leaf, CA] and Leaf is set.
func ServerCert(tb testing.TB, a *ca.Authority, names ...string) tls.Certificate {
	tb.Helper()
	if len(names) == 0 {
		names = []string{"127.0.0.1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("catest: generate server key: %v", err)
	}
	leaf, der, err := a.Issue(names, key.Public(), 24*time.Hour)
	if err != nil {
		tb.Fatalf("catest: issue server certificate for %q: %v", names, err)
	}
	return tls.Certificate{
		Certificate: [][]byte{der, a.CertDER()},
		PrivateKey:  key,
		Leaf:        leaf,
	}
}
