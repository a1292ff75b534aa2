package ca_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// importSubCA is `tlsbridge ca import -chain root.pem` into a new
// directory, then a Load, as run does.
func importSubCA(t *testing.T, root *catest.Root, cn string) *ca.Authority {
	t.Helper()
	certPEM, keyPEM := root.Intermediate(t, cn)
	a, err := ca.ParseWithChain(certPEM, keyPEM, root.PEM)
	if err != nil {
		t.Fatalf("ParseWithChain: %v", err)
	}
	dir := t.TempDir()
	if err := a.Save(dir, false); err != nil {
		t.Fatal(err)
	}
	loaded, err := ca.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return loaded
}

// An imported sub-CA serves leaves with the chain up to, not including,
// the root, so an app that trusts only the root verifies them; Root is
// that root. SetAuthority (the SIGHUP rotation) switches new handshakes to
// the next sub-CA while a connection made before keeps working.
func TestSubCAChainAndRotation(t *testing.T) {
	root := catest.NewRoot(t)
	a1 := importSubCA(t, root, "instance-1 sub-CA")
	if !bytes.Equal(a1.Root().Raw, root.Cert.Raw) || len(a1.Chain()) != 1 {
		t.Fatalf("Root() = %q, chain length %d; want the org root and 1", a1.Root().Subject, len(a1.Chain()))
	}
	if !bytes.Equal(a1.RootPEM(), root.PEM) {
		t.Errorf("RootPEM() is not the root's PEM")
	}
	cache := catest.NewCache(t, a1)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return cache.Get("app.test", cache.KeyTypeFor(hi))
	}}
	srv.StartTLS()
	defer srv.Close()
	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: root.Pool(), ServerName: "app.test"},
		}}
	}
	get := func(c *http.Client) *tls.ConnectionState {
		t.Helper()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("GET trusting only the root: %v", err)
		}
		defer resp.Body.Close()
		io.ReadAll(resp.Body)
		return resp.TLS
	}
	old := client()
	cs := get(old)
	if n := len(cs.PeerCertificates); n != 2 || cs.PeerCertificates[1].Subject.CommonName != "instance-1 sub-CA" {
		t.Errorf("served chain: %d certificates, second %q; want [leaf, instance-1 sub-CA] (no root)", n, cs.PeerCertificates[1].Subject.CommonName)
	}

	a2 := importSubCA(t, root, "instance-1 sub-CA rotated")
	if err := cache.SetAuthority(a2); err != nil {
		t.Fatal(err)
	}
	if got := cache.Stats().Len; got != 0 {
		t.Errorf("after SetAuthority: %d cached leaves, want 0 (flushed)", got)
	}
	cs = get(client())
	if got := cs.PeerCertificates[1].Subject.CommonName; got != "instance-1 sub-CA rotated" {
		t.Errorf("after rotation, a new connection's issuer = %q, want the rotated sub-CA", got)
	}
	// The kept-alive connection from before is not touched: same leaf.
	if cs := get(old); cs.PeerCertificates[1].Subject.CommonName != "instance-1 sub-CA" {
		t.Errorf("the connection made before the rotation changed issuer to %q", cs.PeerCertificates[1].Subject.CommonName)
	}
}

// A chain that does not reach a self-signed root is refused at import,
// naming what is missing.
func TestParseWithChainIncomplete(t *testing.T) {
	root, other := catest.NewRoot(t), catest.NewRoot(t)
	certPEM, keyPEM := root.Intermediate(t, "sub")
	// Same subject, different key: the signature check tells them apart.
	if _, err := ca.ParseWithChain(certPEM, keyPEM, other.PEM); !errors.Is(err, ca.ErrIncompleteChain) {
		t.Errorf("ParseWithChain with another root: err = %v, want ErrIncompleteChain", err)
	}
	// Without a chain the sub-CA still imports, as before: apps must then
	// trust it directly.
	a, err := ca.ParseWithChain(certPEM, keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Root() != a.Cert {
		t.Errorf("Root() of a sub-CA without chain = %q, want the CA itself", a.Root().Subject)
	}
	// The chain may also follow the CA in its own file (cert-manager's
	// tls.crt, step-ca's bundle).
	if a, err := ca.ParseWithChain(append(certPEM, root.PEM...), keyPEM, nil); err != nil || !bytes.Equal(a.Root().Raw, root.Cert.Raw) {
		t.Errorf("ParseWithChain(cert+root bundle) = %v, %v; want the root", a, err)
	}
}

// With a CA between the sub-CA and the root, leaves go out as [leaf,
// sub-CA, middle CA]: the whole chain up to, not including, the root,
// whatever order the chain file lists it in.
func TestSubCAServesMiddleCA(t *testing.T) {
	root := catest.NewRoot(t)
	mid := root.SubRoot(t, "org issuing CA")
	certPEM, keyPEM := mid.Intermediate(t, "instance sub-CA")
	a, err := ca.ParseWithChain(certPEM, keyPEM, append(append([]byte(nil), root.PEM...), mid.PEM...))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.Chain()); n != 2 || a.Chain()[0].Subject.CommonName != "org issuing CA" {
		t.Fatalf("Chain() has %d certificates, first %q; want [org issuing CA, root]", n, a.Chain()[0].Subject.CommonName)
	}
	cache := catest.NewCache(t, a)
	for _, kt := range ca.KeyTypes() {
		cert, err := cache.Get("app.test", kt)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, der := range cert.Certificate[1:] {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, c.Subject.CommonName)
		}
		if want := []string{"instance sub-CA", "org issuing CA"}; !slices.Equal(names, want) {
			t.Errorf("%v leaf served with %q, want %q", kt, names, want)
		}
		inter := x509.NewCertPool()
		for _, der := range cert.Certificate[1:] {
			c, _ := x509.ParseCertificate(der)
			inter.AddCert(c)
		}
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "app.test", Roots: root.Pool(), Intermediates: inter}); err != nil {
			t.Errorf("%v leaf does not verify with what is served, trusting only the root: %v", kt, err)
		}
	}
}
