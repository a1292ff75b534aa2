package bump

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// clientCA issues client certificates (ExtKeyUsageClientAuth), as the CA
// an mTLS API trusts for its clients.
type clientCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newClientCA(t testing.TB, name string) *clientCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &clientCA{cert: cert, key: key, pool: pool}
}

// issue writes a client certificate for cn and its key (0600) into dir
// as name.pem and name-key.pem, replacing what is there.
func (c *clientCA) issue(t testing.TB, dir, name, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// newMTLSOrigin is an origin that requires a client certificate from
// clients (ClientCAs) and answers with its subject's CN.
func newMTLSOrigin(t testing.TB, clients *clientCA, maxV uint16) *origin {
	t.Helper()
	return startOrigin(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client=%s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}), func(c *tls.Config) {
		c.MaxVersion = maxV
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clients.pool
	})
}

// A rule's client certificate is presented upstream, over TLS 1.2 and
// 1.3; without one, or with one the server does not trust, the app reads a
// 502 naming client_cert, and check says the same.
func TestClientCertificate(t *testing.T) {
	dir := t.TempDir()
	apiCA, otherCA := newClientCA(t, "api client CA"), newClientCA(t, "some other CA")
	goodCert, goodKey := apiCA.issue(t, dir, "good", "legacy-app")
	badCert, badKey := otherCA.issue(t, dir, "bad", "stranger")
	for _, maxV := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(policy.TLSVersionName(maxV), func(t *testing.T) {
			o := newMTLSOrigin(t, apiCA, maxV)
			cfg := caFiles(o.caFile) +
				pinRule("good.test", "bump", o.addr, originName, fmt.Sprintf("client_cert = %q\nclient_key = %q", goodCert, goodKey)) +
				pinRule("none.test", "bump", o.addr, originName) +
				pinRule("bad.test", "bump", o.addr, originName, fmt.Sprintf("client_cert = %q\nclient_key = %q", badCert, badKey))
			p := startProxy(t, cfg)
			client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
			resp, body := get(t, client, "https://good.test/")
			if resp.StatusCode != 200 || body != "client=legacy-app" {
				t.Fatalf("good.test: %d %q", resp.StatusCode, body)
			}
			for _, tt := range []struct {
				host string
				want []string
			}{
				{"none.test", []string{"asks for a client certificate", "set `client_cert = \"client.pem\"` in [rule.upstream] of rule[1]"}},
				{"bad.test", []string{"rejected tlsbridge's client certificate", `"CN=stranger"`, `issuer "CN=some other CA"`, badCert}},
			} {
				resp, body := get(t, client, "https://"+tt.host+"/")
				if resp.StatusCode != http.StatusBadGateway {
					t.Errorf("%s: %d, want 502: %s", tt.host, resp.StatusCode, body)
				}
				for _, w := range tt.want {
					if !strings.Contains(body, w) {
						t.Errorf("%s: body lacks %q:\n%s", tt.host, w, body)
					}
				}
			}
			for host, want := range map[string]string{
				"good.test": "client cert asked for; tlsbridge presented " + goodCert + ` (subject "CN=legacy-app"): accepted`,
				"none.test": "client cert asked for by the server and REQUIRED; tlsbridge has none",
				"bad.test":  "client cert asked for; tlsbridge presented " + badCert + ` (subject "CN=stranger"): REJECTED`,
			} {
				r := Check(context.Background(), p.srv.Policy(), host, 443, nil)
				var b strings.Builder
				r.WriteTo(&b)
				if !strings.Contains(b.String(), want) || r.LegacyOK() != (host == "good.test") {
					t.Errorf("check %s (ok %v), want %q:\n%s", host, r.LegacyOK(), want, b.String())
				}
			}
		})
	}
}

// A renewed certificate (same files, new content) is used by new
// connections after a reload; a connection made before keeps the one it
// presented.
func TestClientCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	apiCA := newClientCA(t, "api client CA")
	certFile, keyFile := apiCA.issue(t, dir, "client", "app-2026")
	o := newMTLSOrigin(t, apiCA, tls.VersionTLS13)
	configPath := filepath.Join(dir, "config.toml")
	cfg := caFiles(o.caFile) + pinRule("api.test", "bump", o.addr, originName, fmt.Sprintf("client_cert = %q\nclient_key = %q", certFile, keyFile))
	if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, cfg)
	// An app that keeps its connection open across the reload.
	kept := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	kept.Transport.(*http.Transport).DisableKeepAlives = false
	if _, body := get(t, kept, "https://api.test/"); body != "client=app-2026" {
		t.Fatalf("before rotation: %q", body)
	}

	apiCA.issue(t, dir, "client", "app-2027") // renewed on disk
	pol, err := policy.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol) // what SIGHUP does

	fresh := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	if _, body := get(t, fresh, "https://api.test/"); body != "client=app-2027" {
		t.Errorf("new connection after the reload: %q, want the renewed certificate", body)
	}
	if _, body := get(t, kept, "https://api.test/"); body != "client=app-2026" {
		t.Errorf("connection made before the reload: %q, want the certificate it presented", body)
	}
}

// A running [[listener]] is kept by a reload that renews its client
// certificate (same files): its next connection presents the new one, an
// open connection keeps its own.
func TestListenerClientCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	apiCA := newClientCA(t, "api client CA")
	certFile, keyFile := apiCA.issue(t, dir, "client", "listener-2026")
	o := newMTLSOrigin(t, apiCA, tls.VersionTLS13)
	cfg := listenerConfig(o.addr, o.caFile, "client_tls = false") + fmt.Sprintf("client_cert = %q\nclient_key = %q\n", certFile, keyFile)
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, cfg)
	addr, _ := runListener(t, p, 0)
	whoami := func(c net.Conn) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	kept, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	// One request per read: a fresh bufio.Reader each time is fine as the
	// server answers one response at a time.
	if got := whoami(kept); got != "client=listener-2026" {
		t.Fatalf("before: %q", got)
	}
	apiCA.issue(t, dir, "client", "listener-2027")
	pol, err := policy.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	if !p.srv.Policy().Listeners[0].Equal(pol.Listeners[0]) {
		t.Fatal("a renewed certificate would restart the listener")
	}
	p.srv.SetPolicy(pol)
	fresh, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := whoami(fresh); got != "client=listener-2027" {
		t.Errorf("new connection after the reload: %q", got)
	}
	if got := whoami(kept); got != "client=listener-2026" {
		t.Errorf("connection opened before the reload: %q", got)
	}
}
