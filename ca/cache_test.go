package ca_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// legacySuites is what a TLS 1.0 app offers: RSA key exchange and
// ECDHE with CBC, listed explicitly because Go's defaults drop them.
var legacySuites = []uint16{
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
}

// handshake runs a real TLS handshake over loopback TCP between a server
// serving leaves from c and a client trusting only roots.
func handshake(t *testing.T, c *ca.Cache, kt ca.KeyType, roots *x509.CertPool, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	return handshakePick(t, c, func(*tls.ClientHelloInfo) ca.KeyType { return kt }, roots, client)
}

// handshakePick is handshake with the leaf key type chosen per ClientHello.
func handshakePick(t *testing.T, c *ca.Cache, pick func(*tls.ClientHelloInfo) ca.KeyType, roots *x509.CertPool, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverCfg := &tls.Config{
		MinVersion:   tls.VersionTLS10, //nolint:gosec // the legacy clients tlsbridge exists for
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: legacySuites,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := hello.ServerName
			if name == "" {
				// No SNI (IP literal): fall back to the address dialed.
				name, _, _ = net.SplitHostPort(hello.Conn.LocalAddr().String())
			}
			return c.Get(name, pick(hello))
		},
	}
	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		srv := tls.Server(conn, serverCfg)
		err = srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte("ok"))
		}
		serverErr <- err
	}()
	client = client.Clone()
	client.RootCAs = roots
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), client)
	if err != nil {
		<-serverErr
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	buf := make([]byte, 2)
	if _, err := conn.Read(buf); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("read: %w", err)
	}
	if err := <-serverErr; err != nil {
		return tls.ConnectionState{}, fmt.Errorf("server: %w", err)
	}
	return conn.ConnectionState(), nil
}

func TestHandshake(t *testing.T) {
	ecCA := catest.New(t)
	rsaCA := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	caches := map[*ca.Authority]*ca.Cache{ecCA: catest.NewCache(t, ecCA), rsaCA: catest.NewCache(t, rsaCA)}

	tests := []struct {
		name       string
		ca         *ca.Authority
		leaf       ca.KeyType
		serverName string
		version    uint16
		suite      uint16
	}{
		{"tls10/rsa-ca/rsa-leaf/rsa-kex", rsaCA, ca.KeyRSA2048, "api.example.com", tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{"tls10/rsa-ca/rsa-leaf/ecdhe", rsaCA, ca.KeyRSA2048, "api.example.com", tls.VersionTLS10, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"tls10/rsa-ca/ecdsa-leaf/ecdhe", rsaCA, ca.KeyECDSAP256, "api.example.com", tls.VersionTLS10, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		{"tls10/ecdsa-ca/rsa-leaf/rsa-kex", ecCA, ca.KeyRSA2048, "api.example.com", tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{"tls10/ecdsa-ca/ecdsa-leaf/ecdhe", ecCA, ca.KeyECDSAP256, "api.example.com", tls.VersionTLS10, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		{"tls10/ip-no-sni/rsa-leaf", rsaCA, ca.KeyRSA2048, "127.0.0.1", tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{"tls10/ip-no-sni/ecdsa-leaf", ecCA, ca.KeyECDSAP256, "127.0.0.1", tls.VersionTLS10, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		{"tls11/rsa-leaf", rsaCA, ca.KeyRSA2048, "api.example.com", tls.VersionTLS11, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"tls12/ecdsa-leaf", ecCA, ca.KeyECDSAP256, "api.example.com", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"tls13/rsa-leaf", rsaCA, ca.KeyRSA2048, "api.example.com", tls.VersionTLS13, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &tls.Config{
				ServerName: tt.serverName,
				MinVersion: tt.version, //nolint:gosec // testing legacy clients on purpose
				MaxVersion: tt.version,
			}
			if tt.suite != 0 {
				client.CipherSuites = []uint16{tt.suite}
			}
			st, err := handshake(t, caches[tt.ca], tt.leaf, tt.ca.Pool(), client)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tt.version {
				t.Errorf("version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.version))
			}
			if tt.suite != 0 && st.CipherSuite != tt.suite {
				t.Errorf("cipher suite = %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tt.suite))
			}
			if len(st.VerifiedChains) == 0 {
				t.Errorf("no verified chains")
			} else if chain := st.VerifiedChains[0]; !chain[len(chain)-1].Equal(tt.ca.Cert) {
				t.Errorf("verified chain ends in %q, want the CA %q", chain[len(chain)-1].Subject, tt.ca.Cert.Subject)
			}
			// The leaf's issuer: the in-memory intermediate for an ECDSA
			// leaf of an RSA CA, else the CA.
			if got := len(st.PeerCertificates); got != 2 {
				t.Errorf("server sent %d certificates, want 2 (leaf and its issuer)", got)
			}
			if err := st.PeerCertificates[0].VerifyHostname(tt.serverName); err != nil {
				t.Errorf("leaf does not match %q: %v", tt.serverName, err)
			}
		})
	}

	t.Run("untrusted-ca-fails", func(t *testing.T) {
		_, err := handshake(t, caches[ecCA], ca.KeyECDSAP256, rsaCA.Pool(), &tls.Config{
			ServerName: "api.example.com",
			MinVersion: tls.VersionTLS12,
		})
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) {
			t.Errorf("handshake against the wrong CA: err = %v, want x509.UnknownAuthorityError", err)
		}
	})
}

func TestCacheHit(t *testing.T) {
	var logged atomic.Int32
	a := catest.New(t)
	c, err := ca.NewCache(a, ca.CacheConfig{Logger: func(string, ...any) { logged.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	first, err := c.Get("api.example.com", ca.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if first.Leaf == nil {
		t.Fatal("Leaf is nil")
	}
	if len(first.Certificate) != 2 || string(first.Certificate[1]) != string(a.CertDER()) {
		t.Errorf("Certificate chain: want [leaf, CA]")
	}
	for _, name := range []string{"api.example.com", "API.Example.COM.", "api.example.com:443"} {
		got, err := c.Get(name, ca.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Errorf("Get(%q) minted a new leaf, want the cached one", name)
		}
	}
	if got, want := c.Stats(), (ca.CacheStats{Hits: 3, Misses: 1, Mints: 1, Len: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	// The other key type is another entry.
	rsaLeaf, err := c.Get("api.example.com", ca.KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if rsaLeaf == first {
		t.Errorf("RSA and ECDSA leaves share an entry")
	}
	if got, want := c.Stats(), (ca.CacheStats{Hits: 3, Misses: 2, Mints: 2, Len: 2}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if logged.Load() == 0 {
		t.Errorf("Logger was never called")
	}
}

func TestCacheSharedLeafKey(t *testing.T) {
	c := catest.NewCache(t, catest.New(t))
	for _, kt := range ca.KeyTypes() {
		t.Run(kt.String(), func(t *testing.T) {
			a, err := c.Get("a.example", kt)
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.Get("b.example", kt)
			if err != nil {
				t.Fatal(err)
			}
			probe := c.Probe(kt)
			if probe == nil {
				t.Fatal("Probe = nil")
			}
			if a.PrivateKey != b.PrivateKey || a.PrivateKey != probe.PrivateKey {
				t.Errorf("leaves of one key type do not share the process-wide key")
			}
			pub := probe.PrivateKey.(crypto.Signer).Public()
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(probe.Leaf.PublicKey) {
				t.Errorf("probe Leaf does not hold the probe's key")
			}
		})
	}
	if got := c.Stats().Mints; got != 4 {
		t.Errorf("Mints = %d, want 4 (probes are not counted)", got)
	}
	if c.Probe(0) != nil {
		t.Errorf("Probe(0) != nil")
	}
}

// TestProbeSupportsCertificate shows what Probe is for: choosing the leaf
// key type from a real ClientHello (leaf_key = "auto") without minting.
func TestProbeSupportsCertificate(t *testing.T) {
	a := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	c := catest.NewCache(t, a)
	var probeErrs []error
	pick := func(hello *tls.ClientHelloInfo) ca.KeyType {
		// What SupportsKeyType fixes: the probe never matches the SNI.
		probeErrs = append(probeErrs, hello.SupportsCertificate(c.Probe(ca.KeyECDSAP256)))
		return c.KeyTypeFor(hello)
	}
	tests := []struct {
		name    string
		version uint16
		suites  []uint16
		want    ca.KeyType
	}{
		{"tls10/rsa-kex-only", tls.VersionTLS10, []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, ca.KeyRSA2048},
		{"tls10/ecdhe-rsa-only", tls.VersionTLS10, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, ca.KeyRSA2048},
		{"tls10/ecdhe-ecdsa", tls.VersionTLS10, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, ca.KeyECDSAP256},
		{"tls12/default-suites", tls.VersionTLS12, nil, ca.KeyECDSAP256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := handshakePick(t, c, pick, a.Pool(), &tls.Config{
				ServerName:   "api.example.com",
				MinVersion:   tt.version, //nolint:gosec // testing legacy clients on purpose
				MaxVersion:   tt.version,
				CipherSuites: tt.suites,
			})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			got := ca.KeyRSA2048
			if st.PeerCertificates[0].PublicKeyAlgorithm == x509.ECDSA {
				got = ca.KeyECDSAP256
			}
			if got != tt.want {
				t.Errorf("leaf key type = %v, want %v", got, tt.want)
			}
		})
	}
	for _, err := range probeErrs {
		if err == nil {
			t.Errorf("SupportsCertificate(probe) with SNI api.example.com = nil, want a server-name error")
		}
	}
	// One host, two key types: probing mints nothing.
	if got := c.Stats().Mints; got != 2 {
		t.Errorf("Mints = %d, want 2 (one leaf per key type, none for probing)", got)
	}
}

func TestCacheCoalesce(t *testing.T) {
	c := catest.NewCache(t, catest.New(t))
	for _, kt := range ca.KeyTypes() {
		t.Run(kt.String(), func(t *testing.T) {
			before := c.Stats().Mints
			const n = 50
			var wg sync.WaitGroup
			start := make(chan struct{})
			certs := make([]*tls.Certificate, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					<-start
					certs[i], errs[i] = c.Get("new.example.com", kt)
				})
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("Get #%d: %v", i, errs[i])
				}
				if certs[i] != certs[0] {
					t.Errorf("Get #%d returned a different leaf", i)
				}
			}
			if got := c.Stats().Mints - before; got != 1 {
				t.Errorf("%d concurrent Gets minted %d leaves, want 1", n, got)
			}
		})
	}
}

func TestCacheCapacity(t *testing.T) {
	const capacity = 20
	c, err := ca.NewCache(catest.New(t), ca.CacheConfig{Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := func(i int) string { return fmt.Sprintf("h%d.example.com", i) }
	for i := range capacity + 10 {
		if _, err := c.Get(name(i), ca.KeyECDSAP256); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stats().Len; got != capacity {
		t.Errorf("Len = %d after %d names, want %d", got, capacity+10, capacity)
	}
	mints := c.Stats().Mints
	// The newest name is cached, the oldest was evicted.
	if _, err := c.Get(name(capacity+9), ca.KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Mints; got != mints {
		t.Errorf("Get of the newest name minted (Mints %d, want %d)", got, mints)
	}
	if _, err := c.Get(name(0), ca.KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Mints; got != mints+1 {
		t.Errorf("Get of the evicted name: Mints = %d, want %d", got, mints+1)
	}
	if got := c.Stats().Len; got != capacity {
		t.Errorf("Len = %d, want %d", got, capacity)
	}
}

func TestCacheGetMulti(t *testing.T) {
	a := catest.New(t)
	c := catest.NewCache(t, a)
	names := []string{"proxy.internal", "localhost", "127.0.0.1", "::1"}
	cert, err := c.GetMulti(names, ca.KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: a.Pool()}); err != nil {
			t.Errorf("proxy certificate does not verify for %q: %v", n, err)
		}
	}
	if got := cert.Leaf.Subject.CommonName; got != "proxy.internal" {
		t.Errorf("CommonName = %q, want %q", got, "proxy.internal")
	}
	again, err := c.GetMulti([]string{"PROXY.internal.", "localhost", "127.0.0.1", "[::1]"}, ca.KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if again != cert {
		t.Errorf("GetMulti with equivalent names minted again")
	}
	single, err := c.Get("proxy.internal", ca.KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if single == cert {
		t.Errorf("Get(one name) returned the multi-name leaf")
	}
}

func TestCacheErrors(t *testing.T) {
	c := catest.NewCache(t, catest.New(t))
	tests := []struct {
		name string
		host string
		kt   ca.KeyType
		want error // nil: any error
	}{
		{"empty-name", "", ca.KeyECDSAP256, nil},
		{"bad-name", "bad host", ca.KeyECDSAP256, nil},
		{"unknown-key-type", "example.com", 0, ca.ErrUnknownKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Get(tt.host, tt.kt)
			if err == nil {
				t.Fatalf("Get(%q, %v) error = nil, want error", tt.host, tt.kt)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Get(%q, %v) error = %v, want %v", tt.host, tt.kt, err, tt.want)
			}
		})
	}
	if got := c.Stats().Len; got != 0 {
		t.Errorf("failed Gets left %d entries", got)
	}
}

func TestCacheClose(t *testing.T) {
	c := catest.NewCache(t, catest.New(t))
	if _, err := c.Get("example.com", ca.KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close #%d = %v, want nil", i+1, err)
		}
	}
	_, err := c.Get("example.com", ca.KeyECDSAP256)
	if !errors.Is(err, ca.ErrCacheClosed) {
		t.Errorf("Get after Close: err = %v, want ErrCacheClosed", err)
	}
	if !strings.Contains(fmt.Sprint(err), "example.com") {
		t.Errorf("error %q does not name the host", err)
	}
	if got := c.Stats().Len; got != 0 {
		t.Errorf("Len after Close = %d, want 0", got)
	}
}
