// Package catest provides throw-away certificate authorities for tests, like
// net/http/httptest provides servers: each call makes a fresh CA in the
// test's temporary directory, so tests never share a CA or touch the user's.
package catest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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

// Root is an organisation's root CA made outside tlsbridge (as openssl,
// step-ca or cert-manager would), to test `tlsbridge ca import` of the
// sub-CAs it issues. Apps trust Cert; tlsbridge never holds its key.
type Root struct {
	Cert *x509.Certificate
	PEM  []byte
	key  *ecdsa.PrivateKey
}

// NewRoot returns a new self-signed ECDSA P-256 root CA.
func NewRoot(tb testing.TB) *Root {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("catest: root key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "catest org root", Organization: []string{"catest"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("catest: root certificate: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &Root{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool returns a pool holding only the root, what an app trusts.
func (r *Root) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.Cert)
	return p
}

// Intermediate issues a sub-CA named cn (path length 0, like `openssl x509
// -req -extfile` with basicConstraints=critical,CA:TRUE,pathlen:0) and
// returns its certificate and its PKCS #8 key as PEM.
func (r *Root) Intermediate(tb testing.TB, cn string) (certPEM, keyPEM []byte) {
	tb.Helper()
	der, key := r.issueCA(tb, "intermediate", cn, 0)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("catest: intermediate key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// SubRoot issues an intermediate CA named cn that may itself issue
// sub-CAs (no path length limit), for chains root → SubRoot → sub-CA. Its
// PEM is its own certificate only.
func (r *Root) SubRoot(tb testing.TB, cn string) *Root {
	tb.Helper()
	der, key := r.issueCA(tb, "sub-root", cn, -1)
	cert, _ := x509.ParseCertificate(der)
	return &Root{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// issueCA signs, with r, a CA certificate named cn for a new P-256 key,
// valid from an hour ago for a day, with path length pathLen (0: it issues
// only leaves; -1: no limit); what names it in a failure.
func (r *Root) issueCA(tb testing.TB, what, cn string, pathLen int) ([]byte, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("catest: %s key: %v", what, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"catest"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(23 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, key.Public(), r.key)
	if err != nil {
		tb.Fatalf("catest: %s certificate: %v", what, err)
	}
	return der, key
}
