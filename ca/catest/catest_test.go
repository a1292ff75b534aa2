package catest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

func TestNew(t *testing.T) {
	a := catest.New(t)
	if got := a.KeyType(); got != ca.KeyECDSAP256 {
		t.Errorf("New: CA key type = %v, want %v", got, ca.KeyECDSAP256)
	}
	if _, err := ca.Load(a.Dir); err != nil {
		t.Errorf("Load(%s) = %v, want the CA New stored there", a.Dir, err)
	}
	r := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	if got := r.KeyType(); got != ca.KeyRSA2048 {
		t.Errorf("NewWithOptions(rsa2048): CA key type = %v, want %v", got, ca.KeyRSA2048)
	}
}

// ServerCert in its intended use: an httptest origin server that a client
// trusting only the test CA can reach with full verification.
func TestServerCert(t *testing.T) {
	a := catest.New(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{catest.ServerCert(t, a)}}
	srv.StartTLS()
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.Pool()}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s: %v", srv.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}

	cert := catest.ServerCert(t, a, "origin.test", "::1")
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "origin.test", Roots: a.Pool()}); err != nil {
		t.Errorf("ServerCert(origin.test) does not verify: %v", err)
	}
}

func TestNewCache(t *testing.T) {
	c := catest.NewCache(t, catest.New(t))
	if _, err := c.Get("example.com", ca.KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
}
