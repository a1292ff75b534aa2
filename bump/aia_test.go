package bump

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// chainPKI is a root, an intermediate and leaves that name the
// intermediate's AIA URL: the PKI of a server that sends only its leaf.
type chainPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	rootFile          string // PEM of the root, for ca_files
}

func newChainPKI(t testing.TB, name string) *chainPKI {
	t.Helper()
	ca := func(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	p := &chainPKI{}
	p.root, p.rootKey = ca(name+" root", nil, nil)
	p.inter, p.interKey = ca(name+" intermediate", p.root, p.rootKey)
	p.rootFile = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(p.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// leaf is a server certificate for origin.test and 127.0.0.1 signed by
// the intermediate, naming aiaURL, as the server sends it: alone.
func (p *chainPKI) leaf(t testing.TB, aiaURL string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "origin.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"origin.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IssuingCertificateURL: []string{aiaURL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.inter, &key.PublicKey, p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// leafOnlyOrigin serves cert (a leaf without its intermediate).
func leafOnlyOrigin(t testing.TB, cert tls.Certificate) string {
	t.Helper()
	o := startOrigin(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the leaf-only origin")
	}), func(c *tls.Config) { c.Certificates = []tls.Certificate{cert} })
	return o.addr
}

// pkcs7 wraps certs in a PKCS #7 certs-only SignedData, the .p7c format.
func pkcs7(t testing.TB, certs ...*x509.Certificate) []byte {
	t.Helper()
	var raw []byte
	for _, c := range certs {
		raw = append(raw, c.Raw...)
	}
	sd, err := asn1.Marshal(struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      struct{ Type asn1.ObjectIdentifier }
		Certificates     asn1.RawValue
		SignerInfos      asn1.RawValue
	}{
		Version:          1,
		DigestAlgorithms: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true},
		ContentInfo:      struct{ Type asn1.ObjectIdentifier }{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: raw},
		SignerInfos:      asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue
	}{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// aiaServer serves the intermediate as DER and PKCS #7, and the
// attackers: 100 MB, a body that never ends, a non-CA certificate.
type aiaServer struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newAIAServer(t testing.TB, p *chainPKI, notCA *x509.Certificate) *aiaServer {
	t.Helper()
	a := &aiaServer{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		switch r.URL.Path {
		case "/inter.der":
			w.Write(p.inter.Raw)
		case "/inter.p7c":
			w.Write(pkcs7(t, p.inter))
		case "/huge":
			chunk := make([]byte, 1<<20)
			for range 100 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/never-ends":
			w.Write(p.inter.Raw[:10])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/slow.der": // long enough for concurrent handshakes to meet
			time.Sleep(300 * time.Millisecond)
			w.Write(p.inter.Raw)
		case "/not-ca":
			w.Write(notCA.Raw)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// fetch_intermediates completes a chain sent without its intermediate,
// from DER or PKCS #7, caches it, logs the server's misconfiguration; off,
// the 502 names the key. Roots and the name are still enforced, and the
// attackers (100 MB, a body that never ends, tlsbridge's own port, a
// non-CA certificate) are answered 502 in bounded time.
func TestFetchIntermediates(t *testing.T) {
	p := newChainPKI(t, "good")
	evil := newChainPKI(t, "evil") // chains to a root nobody configured
	nonCA := p.leaf(t, "http://unused/")
	nonCALeaf, _ := x509.ParseCertificate(nonCA.Certificate[0])
	aia := newAIAServer(t, p, nonCALeaf)
	evilAIA := newAIAServer(t, evil, nonCALeaf)
	base := aia.srv.URL

	origins := map[string]string{
		"der":        leafOnlyOrigin(t, p.leaf(t, base+"/inter.der")),
		"p7c":        leafOnlyOrigin(t, p.leaf(t, base+"/inter.p7c")),
		"huge":       leafOnlyOrigin(t, p.leaf(t, base+"/huge")),
		"never-ends": leafOnlyOrigin(t, p.leaf(t, base+"/never-ends")),
		"not-ca":     leafOnlyOrigin(t, p.leaf(t, base+"/not-ca")),
		"evil":       leafOnlyOrigin(t, evil.leaf(t, evilAIA.srv.URL+"/inter.der")),
	}
	// The proxy's own port as AIA URL: its address is known once it
	// listens, so that origin's rule is added by a reload.
	cfg := func(extra string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "[upstream]\nca_files = [%q]\n[limits]\nupstream_timeout = \"3s\"\n", p.rootFile)
		for _, name := range []string{"der", "p7c", "huge", "never-ends", "not-ca", "evil"} {
			b.WriteString(pinRule(name+".test", "bump", origins[name], originName, "fetch_intermediates = true"))
		}
		b.WriteString(pinRule("off.test", "bump", origins["der"], originName))
		b.WriteString(pinRule("der2.test", "bump", origins["der"], originName, "fetch_intermediates = true"))
		b.WriteString(pinRule("wrongname.test", "bump", origins["der"], `server_name = "other.test"`, "fetch_intermediates = true"))
		b.WriteString(extra)
		return b.String()
	}
	px := startProxy(t, cfg(""))
	self := leafOnlyOrigin(t, p.leaf(t, "http://"+px.addr+"/ca.der"))
	pol, err := policy.Parse([]byte(cfg(pinRule("self.test", "bump", self, originName, "fetch_intermediates = true"))), "")
	if err != nil {
		t.Fatal(err)
	}
	px.srv.SetPolicy(pol)

	client := px.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	for _, tt := range []struct {
		host   string
		status int
		want   []string
	}{
		{"der.test", 200, []string{"hello from the leaf-only origin"}},
		{"der2.test", 200, nil}, // another rule, the same URL: from the cache
		{"p7c.test", 200, nil},
		{"off.test", 502, []string{"without the intermediate", base + "/inter.der", "set `fetch_intermediates = true` in [rule.upstream] of rule[6]"}},
		{"huge.test", 502, []string{"fetching it from " + base + "/huge failed", "more than 65536 bytes"}},
		{"never-ends.test", 502, []string{"fetching it from " + base + "/never-ends failed"}},
		{"not-ca.test", 502, []string{"no CA certificate in the answer"}},
		{"self.test", 502, []string{"tlsbridge's own listener"}},
		{"evil.test", 502, []string{"unknown authority"}},                           // roots enforced
		{"wrongname.test", 502, []string{"not valid for the name", `"other.test"`}}, // name enforced
	} {
		start := time.Now()
		resp, body := get(t, client, "https://"+tt.host+"/")
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("%s: answered after %v", tt.host, d)
		}
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d:\n%s", tt.host, resp.StatusCode, tt.status, body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: body lacks %q:\n%s", tt.host, w, body)
			}
		}
	}
	ms := httptest.NewServer(px.srv.MetricsHandler())
	defer ms.Close()
	samples := scrape(t, ms.URL)
	if f, c := samples[`tlsbridge_aia_fetches_total{result="fetched"}`], samples[`tlsbridge_aia_fetches_total{result="cached"}`]; f != 3 || c < 1 {
		t.Errorf("aia fetches: fetched %v (want 3: der, p7c, evil), cached %v", f, c)
	}
	if !strings.Contains(px.logs(), "sends an incomplete certificate chain") {
		t.Errorf("the incomplete chain is not logged:\n%s", px.logs())
	}
	if n := evilAIA.hits.Load(); n != 1 {
		t.Errorf("evil AIA fetched %d times, want 1", n)
	}

	// check completes the chain the same way.
	r := Check(context.Background(), px.srv.Policy(), "der.test", 443, nil)
	if !r.LegacyOK() {
		var b strings.Builder
		r.WriteTo(&b)
		t.Errorf("check der.test:\n%s", b.String())
	}
}

// A server on the network cannot make tlsbridge fetch from a local
// address (a loopback admin port, 169.254.169.254); a server on loopback
// may name a local AIA server (the example's setup).
func TestAIALocalAddressRefused(t *testing.T) {
	p := newChainPKI(t, "local")
	aia := newAIAServer(t, p, nil)
	f := newAIAFetcher((&net.Dialer{}).DialContext, nil, nil)
	for _, u := range []string{aia.srv.URL + "/inter.der", "http://localhost:" + strings.Split(aia.srv.URL, ":")[2] + "/inter.der", "http://169.254.169.254/latest/meta-data/"} {
		if _, err := f.get(context.Background(), u, nil, false); err != errAIALocal {
			t.Errorf("remote server, AIA %s: err %v, want errAIALocal", u, err)
		}
	}
	if n := aia.hits.Load(); n != 0 {
		t.Errorf("the local AIA server was hit %d times", n)
	}
	if certs, err := f.get(context.Background(), aia.srv.URL+"/inter.der", nil, true); err != nil || len(certs) != 1 {
		t.Errorf("loopback server, local AIA: %v", err)
	}
}

// The cache cannot be poisoned across the keys that decide an answer: a
// remote server's refusal of a loopback URL does not answer a loopback
// server asking for the same URL (nor is it cached at all), and what one
// parent returned is not reused for a rule with another parent.
func TestAIACacheKeys(t *testing.T) {
	p := newChainPKI(t, "keys")
	aia := newAIAServer(t, p, nil)
	u := aia.srv.URL + "/inter.der"
	f := newAIAFetcher((&net.Dialer{}).DialContext, nil, nil)
	remote := target{rule: &policy.Rule{Name: "remote"}}
	if _, _, err := f.fetch(context.Background(), u, remote, false); err != errAIALocal {
		t.Fatalf("remote server, loopback AIA: %v, want errAIALocal", err)
	}
	if n := len(f.cache); n != 0 {
		t.Errorf("errAIALocal cached (%d entries)", n)
	}
	certs, cached, err := f.fetch(context.Background(), u, remote, true)
	if err != nil || cached || len(certs) != 1 || aia.hits.Load() != 1 {
		t.Errorf("loopback server after a remote one's refusal: %d certs, cached %v, err %v, hits %d; want a fetch", len(certs), cached, err, aia.hits.Load())
	}
	// And the other way round: a loopback server's result does not
	// answer a remote server.
	if _, _, err := f.fetch(context.Background(), u, remote, false); err != errAIALocal {
		t.Errorf("remote server after a loopback one's fetch: %v, want errAIALocal", err)
	}

	// Two parents that resolve aia.internal differently: each rule gets
	// its own parent's answer.
	evil := newChainPKI(t, "evil")
	evilAIA := newAIAServer(t, evil, nil)
	good := newFakeParent(t, map[string]string{"aia.internal:80": aia.srv.Listener.Addr().String()}, "", "")
	bad := newFakeParent(t, map[string]string{"aia.internal:80": evilAIA.srv.Listener.Addr().String()}, "", "")
	rule := func(fp *fakeParent) target {
		var r policy.Rule
		r.Upstream.Proxy = &policy.ParentProxy{URL: "http://" + fp.addr, Addr: fp.addr}
		return target{rule: &r}
	}
	for _, tt := range []struct {
		fp   *fakeParent
		want *x509.Certificate
	}{{good, p.inter}, {bad, evil.inter}, {good, p.inter}} {
		certs, _, err := f.fetch(context.Background(), "http://aia.internal/inter.der", rule(tt.fp), false)
		if err != nil || len(certs) != 1 || !certs[0].Equal(tt.want) {
			t.Errorf("through %s: %v, want %s", tt.fp.addr, err, tt.want.Subject)
		}
	}
	if g, b := good.gets.Load(), bad.gets.Load(); g != 1 || b != 1 {
		t.Errorf("parents fetched %d and %d times, want 1 and 1 (the second good fetch from the cache)", g, b)
	}
}

// 20 concurrent handshakes with one incomplete chain, before anything is
// cached: one GET, the others wait for it and share its result.
func TestAIAConcurrentFetchCoalesced(t *testing.T) {
	p := newChainPKI(t, "many")
	aia := newAIAServer(t, p, nil)
	origin := leafOnlyOrigin(t, p.leaf(t, aia.srv.URL+"/slow.der"))
	px := startProxy(t, fmt.Sprintf("[upstream]\nca_files = [%q]\n", p.rootFile)+
		pinRule("many.test", "bump", origin, originName, "fetch_intermediates = true"))
	const n = 20
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := px.legacyClient(t, clientOpts{version: tls.VersionTLS12})
			resp, err := client.Get("https://many.test/")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != n || aia.hits.Load() != 1 {
		t.Errorf("%d/%d handshakes succeeded with %d AIA fetches, want %d with 1", ok.Load(), n, aia.hits.Load(), n)
	}
	ms := httptest.NewServer(px.srv.MetricsHandler())
	defer ms.Close()
	samples := scrape(t, ms.URL)
	if f, c := samples[`tlsbridge_aia_fetches_total{result="fetched"}`], samples[`tlsbridge_aia_fetches_total{result="cached"}`]; f != 1 || c != n-1 {
		t.Errorf("aia fetches: fetched %v, cached %v; want 1 and %d", f, c, n-1)
	}
	t.Logf("%d concurrent handshakes, %d AIA GETs", n, aia.hits.Load())
}

// A resumed session is not verified again from its chain (which was
// verified when the session was made) but still for expiry and name.
func TestAIAResumedSession(t *testing.T) {
	p := newChainPKI(t, "resumed")
	cert := p.leaf(t, "http://aia.invalid/inter.der") // never fetched
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	f := newAIAFetcher(func(context.Context, string, string) (net.Conn, error) {
		t.Error("a resumed session fetched its intermediate")
		return nil, io.EOF
	}, nil, nil)
	empty := x509.NewCertPool() // nothing would verify the chain
	verify := func(name string, resumed bool) error {
		return f.verifyConnection(context.Background(), target{rule: &policy.Rule{}}, empty, name, false)(tls.ConnectionState{DidResume: resumed, PeerCertificates: []*x509.Certificate{leaf}})
	}
	if err := verify("origin.test", true); err != nil {
		t.Errorf("resumed, right name: %v", err)
	}
	if err := verify("other.test", true); err == nil {
		t.Error("resumed, wrong name: accepted")
	}
	expired := *leaf
	expired.NotAfter = time.Now().Add(-time.Minute)
	if err := f.verifyConnection(context.Background(), target{rule: &policy.Rule{}}, empty, "origin.test", false)(tls.ConnectionState{DidResume: true, PeerCertificates: []*x509.Certificate{&expired}}); err == nil {
		t.Error("resumed, expired leaf: accepted")
	}
}
