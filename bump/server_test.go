package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
	"github.com/tlsbridge/tlsbridge/policy"
)

// origin is an in-process HTTPS server with its own CA, standing in for the
// real server an app calls.
type origin struct {
	srv    *httptest.Server
	ca     *ca.Authority
	caFile string // PEM of the origin's CA, for ca_files
	addr   string
}

// newOrigin starts an origin accepting TLS minV..maxV that answers with the
// TLS version it negotiated and the Host it was asked for.
func newOrigin(t testing.TB, minV, maxV uint16) *origin {
	t.Helper()
	return startOrigin(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin-TLS", policy.TLSVersionName(r.TLS.Version))
		fmt.Fprintf(w, "hello from origin; host=%s path=%s", r.Host, r.URL.Path)
	}), func(c *tls.Config) { c.MinVersion, c.MaxVersion = minV, maxV })
}

// startOrigin starts an HTTPS server for h with a certificate for
// origin.test and 127.0.0.1 from a CA of its own, TLS 1.2 or later unless
// tweak says otherwise, and HTTP/2 when h2 is set.
func startOrigin(t testing.TB, h2 bool, h http.Handler, tweak ...func(*tls.Config)) *origin {
	t.Helper()
	oca := catest.New(t)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{catest.ServerCert(t, oca, "origin.test", "127.0.0.1")},
	}
	for _, f := range tweak {
		f(srv.TLS)
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &origin{srv: srv, ca: oca, caFile: oca.CertPath(), addr: srv.Listener.Addr().String()}
}

// proxy is a running tlsbridge bump.Server.
type proxy struct {
	srv   *Server
	ca    *ca.Authority
	certs *ca.Cache
	addr  string
	log   *strings.Builder
	logMu *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// logs returns what the proxy logged so far.
func (p *proxy) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// startProxy runs a Server for the TOML config text (written next to nothing:
// ca_files paths in it must be absolute).
func startProxy(t testing.TB, config string, tweak ...func(*Config)) *proxy {
	t.Helper()
	return startProxyCA(t, catest.New(t), config, tweak...)
}

// startProxyCA is startProxy with a given CA.
func startProxyCA(t testing.TB, authority *ca.Authority, config string, tweak ...func(*Config)) *proxy {
	t.Helper()
	return startProxyOn(t, authority, "127.0.0.1:0", config, tweak...)
}

// startProxyAt is startProxy listening on addr.
func startProxyAt(t testing.TB, addr, config string, tweak ...func(*Config)) *proxy {
	t.Helper()
	return startProxyOn(t, catest.New(t), addr, config, tweak...)
}

func startProxyOn(t testing.TB, authority *ca.Authority, addr, config string, tweak ...func(*Config)) *proxy {
	t.Helper()
	pol, err := policy.Parse([]byte(config), "")
	if err != nil {
		t.Fatalf("policy.Parse:\n%s\n%v", config, err)
	}
	certs, err := ca.NewCache(authority, ca.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { certs.Close() })
	p := &proxy{ca: authority, certs: certs, log: &strings.Builder{}, logMu: &sync.Mutex{}}
	l := logrus.New()
	l.SetOutput(lockedWriter{p.logMu, p.log})
	l.SetLevel(logrus.InfoLevel)
	pol.Limits.HandshakeTimeout, pol.Limits.DrainTimeout = 2*time.Second, time.Second
	cfg := Config{Policy: pol, Certs: certs, Log: logrus.NewEntry(l)}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		srv.Close()
		waitReturn(t, done, "Serve after Close", 10*time.Second)
	})
	return p
}

// clientOpts describe a (legacy) app.
type clientOpts struct {
	version    uint16   // min = max = version
	suites     []uint16 // nil = Go's defaults for that version
	proxyTLS   bool     // speak TLS to the proxy port itself
	noSNI      bool     // send no server_name (verification still done)
	extraRoots *ca.Authority
}

// legacyClient returns an http.Client that goes through the proxy with
// CONNECT and verifies the chain against the proxy's CA (and extraRoots).
func (p *proxy) legacyClient(t testing.TB, o clientOpts) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	if o.extraRoots != nil {
		roots.AddCert(o.extraRoots.Cert)
	}
	cfg := &tls.Config{
		MinVersion:   o.version, //nolint:gosec // the test plays a legacy app
		MaxVersion:   o.version,
		CipherSuites: o.suites,
		RootCAs:      roots,
	}
	scheme := "http"
	if o.proxyTLS {
		scheme = "https"
	}
	tr := &http.Transport{
		Proxy:             http.ProxyURL(&url.URL{Scheme: scheme, Host: p.addr}),
		TLSClientConfig:   cfg,
		DisableKeepAlives: true,
	}
	if o.noSNI {
		// An app without SNI: dial the tunnel ourselves, send no
		// server_name, and verify the chain and name by hand (this is
		// verification, not a skip).
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := p.connect(addr)
			if err != nil {
				return nil, err
			}
			host, _, _ := net.SplitHostPort(addr)
			c := cfg.Clone()
			c.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyConnection below: chain and name are verified
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				opts := x509.VerifyOptions{Roots: roots, DNSName: host, Intermediates: x509.NewCertPool()}
				for _, ic := range cs.PeerCertificates[1:] {
					opts.Intermediates.AddCert(ic)
				}
				_, err := cs.PeerCertificates[0].Verify(opts)
				return err
			}
			tc := tls.Client(raw, c)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// connect opens a CONNECT tunnel to target through the proxy.
func (p *proxy) connect(target string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		return nil, &connectError{status: resp.StatusCode, body: string(body)}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// mustConnect is connect for a CONNECT that must succeed; the connection
// is closed when the test ends.
func (p *proxy) mustConnect(t testing.TB, target string) net.Conn {
	t.Helper()
	c, err := p.connect(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type connectError struct {
	status int
	body   string
}

func (e *connectError) Error() string { return fmt.Sprintf("CONNECT: %d %s", e.status, e.body) }

// get fetches url and returns status, body and the client-side TLS state.
func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}
	return resp, string(b)
}

// pinRule is one [[rule]] for host with action, dialling addr (if not
// empty); upstream holds extra [rule.upstream] lines such as
// `server_name = "origin.test"`.
func pinRule(host, action, addr string, upstream ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n[[rule]]\nhosts = [%q]\naction = %q\n", host, action)
	if addr != "" || len(upstream) > 0 {
		b.WriteString("[rule.upstream]\n")
	}
	if addr != "" {
		fmt.Fprintf(&b, "address = %q\n", addr)
	}
	for _, l := range upstream {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// caFiles is an [upstream] section trusting files.
func caFiles(files ...string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = fmt.Sprintf("%q", f)
	}
	return "[upstream]\nca_files = [" + strings.Join(q, ", ") + "]\n"
}

const originName = `server_name = "origin.test"`

// pinConfig is a config whose one rule sends host to the origin's address.
func pinConfig(o *origin, host, action, extra string) string {
	return fmt.Sprintf(`
[upstream]
ca_files = [%q]

[[rule]]
hosts = [%q]
action = %q
[rule.upstream]
address = %q
server_name = "origin.test"
%s
`, o.caFile, host, action, o.addr, extra)
}

func TestBumpLegacyClients(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	_, originPort, _ := net.SplitHostPort(o.addr)
	p := startProxy(t, fmt.Sprintf("connect_ports = [443, %s]\n", originPort)+pinConfig(o, "origin.test", "bump", ""))

	tests := []struct {
		name string
		url  string
		opts clientOpts
	}{
		{"tls10", "https://origin.test/a", clientOpts{version: tls.VersionTLS10}},
		{"tls11", "https://origin.test/a", clientOpts{version: tls.VersionTLS11}},
		{"tls10-no-sni", "https://origin.test/a", clientOpts{version: tls.VersionTLS10, noSNI: true}},
		{"tls10-ip-literal", "https://" + o.addr + "/a", clientOpts{version: tls.VersionTLS10}},
		{"tls10-rsa-kex-only", "https://origin.test/a", clientOpts{version: tls.VersionTLS10, suites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}},
		{"tls10-3des-only", "https://origin.test/a", clientOpts{version: tls.VersionTLS10, suites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}},
		{"tls12-bumped-by-rule", "https://origin.test/a", clientOpts{version: tls.VersionTLS12}},
		{"tls10-to-proxy-port", "https://origin.test/a", clientOpts{version: tls.VersionTLS10, proxyTLS: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, p.legacyClient(t, tt.opts), tt.url)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %q", resp.StatusCode, body)
			}
			if !strings.HasPrefix(body, "hello from origin") {
				t.Errorf("body = %q, want the origin's answer", body)
			}
			if got := resp.TLS.Version; got != tt.opts.version {
				t.Errorf("client TLS = %s, want %s", versionName(got), versionName(tt.opts.version))
			}
			if got := resp.Header.Get("X-Origin-TLS"); got != "1.2" && got != "1.3" {
				t.Errorf("origin saw TLS %q, want 1.2 or 1.3", got)
			}
			if issuer := resp.TLS.PeerCertificates[0].Issuer.String(); issuer != p.ca.Cert.Subject.String() {
				t.Errorf("leaf issuer = %q, want tlsbridge's CA %q", issuer, p.ca.Cert.Subject)
			}
			wantKey := x509.ECDSA // served to every app that can take it
			if tt.opts.suites != nil {
				wantKey = x509.RSA // RSA key exchange needs an RSA leaf
			}
			if got := resp.TLS.PeerCertificates[0].PublicKeyAlgorithm; got != wantKey {
				t.Errorf("leaf key = %v, want %v", got, wantKey)
			}
			if tt.opts.suites == nil && resp.TLS.CurveID != tls.CurveP256 {
				// Go's server would take X25519, the dearer curve (see serve).
				t.Errorf("ECDHE curve = %v, want P-256 for an app below TLS 1.3", resp.TLS.CurveID)
			}
			if tt.opts.suites != nil && resp.TLS.CipherSuite != tt.opts.suites[0] {
				t.Errorf("cipher = %s, want %s", tls.CipherSuiteName(resp.TLS.CipherSuite), tls.CipherSuiteName(tt.opts.suites[0]))
			}
		})
	}
	if logs := p.logs(); !strings.Contains(logs, "client_tls=TLS1.0") || !strings.Contains(logs, "upstream_tls=TLS1.3") {
		t.Errorf("access log lacks both sides' TLS versions:\n%s", logs)
	}
}

func TestAutoBumpsOnlyLegacyClients(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "auto", ""))

	resp, _ := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://origin.test/")
	if got, want := resp.TLS.PeerCertificates[0].Issuer.String(), p.ca.Cert.Subject.String(); got != want {
		t.Errorf("TLS 1.0 client: issuer = %q, want tlsbridge's CA %q (bumped)", got, want)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		resp, _ = get(t, p.legacyClient(t, clientOpts{version: v, extraRoots: o.ca}), "https://origin.test/")
		if got, want := resp.TLS.PeerCertificates[0].Issuer.String(), o.ca.Cert.Subject.String(); got != want {
			t.Errorf("%s client: issuer = %q, want the origin's CA %q (tunnelled)", versionName(v), got, want)
		}
	}
}

func TestTunnelDenyAndPorts(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "tunnel", "")+`
[[rule]]
hosts = ["*.denied.test"]
action = "deny"
`)
	resp, _ := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS13, extraRoots: o.ca}), "https://origin.test/")
	if got, want := resp.TLS.PeerCertificates[0].Issuer.String(), o.ca.Cert.Subject.String(); got != want {
		t.Errorf("tunnel: issuer = %q, want the origin's CA %q", got, want)
	}

	for _, tt := range []struct {
		name, target string
		status       int
		want         string
	}{
		{"deny-rule", "api.denied.test:443", 403, "denied by rule[1]"},
		{"port-not-allowed", "origin.test:8443", 403, "connect_ports"},
		{"no-port", "origin.test", 400, "host:port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.connect(tt.target)
			var ce *connectError
			if !errors.As(err, &ce) || ce.status != tt.status {
				t.Fatalf("CONNECT %s: err = %v, want %d", tt.target, err, tt.status)
			}
			if !strings.Contains(ce.body, tt.want) {
				t.Errorf("CONNECT %s: body %q does not mention %q", tt.target, ce.body, tt.want)
			}
		})
	}
}

func TestUpstreamFailuresAnswer502InsideTLS(t *testing.T) {
	tls12only := newOrigin(t, tls.VersionTLS12, tls.VersionTLS12)
	untrusted := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	closedLn, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closedLn.Addr().String()
	closedLn.Close()
	p := startProxy(t, caFiles(tls12only.caFile)+
		pinRule("modern.test", "bump", tls12only.addr, `min_tls = "1.3"`)+
		pinRule("untrusted.test", "bump", untrusted.addr, originName)+
		pinRule("down.test", "bump", closedAddr)+
		pinRule("wrongname.test", "bump", tls12only.addr)+
		pinRule("renamed.test", "bump", tls12only.addr, originName))

	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	for _, tt := range []struct {
		host   string
		status int
		want   []string
	}{
		{"modern.test", 502, []string{"1.3", "min_tls", "rule[0]"}},
		{"untrusted.test", 502, []string{"unknown authority", "ca_files"}},
		{"down.test", 502, []string{"could not connect", closedAddr}},
		{"wrongname.test", 502, []string{"wrongname.test", "server_name"}},
	} {
		t.Run(tt.host, func(t *testing.T) {
			resp, body := get(t, client, "https://"+tt.host+"/")
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body does not mention %q:\n%s", w, body)
				}
			}
			if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS10 {
				t.Errorf("502 not answered inside the app's TLS 1.0 connection")
			}
		})
	}
	// The proxy is still healthy, and server_name overrides the
	// verification name.
	resp, body := get(t, client, "https://renamed.test/")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after failures: status %d, body %q; want 200", resp.StatusCode, body)
	}
	if logs := p.logs(); !strings.Contains(logs, "upstream failed") {
		t.Errorf("no upstream failure logged:\n%s", logs)
	}
}

func TestHostHeaderDoesNotRedirect(t *testing.T) {
	a := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(a, "a.test", "bump", ""))
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	req, _ := http.NewRequest(http.MethodGet, "https://a.test/x", nil)
	req.Host = "b.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "hello from origin; host=b.test") {
		t.Errorf("body = %q, want origin A's answer to Host b.test", body)
	}
}

func TestCertificateCache(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "*.cache.test", "bump", ""))
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})

	before := p.certs.Stats().Mints
	get(t, client, "https://one.cache.test/")
	get(t, client, "https://one.cache.test/")
	if got := p.certs.Stats().Mints - before; got != 1 {
		t.Errorf("two connections to one host minted %d leaves, want 1", got)
	}

	before = p.certs.Stats().Mints
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			resp, err := p.legacyClient(t, clientOpts{version: tls.VersionTLS10}).Get("https://many.cache.test/")
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent GET: %v", err)
	}
	if got := p.certs.Stats().Mints - before; got != 1 {
		t.Errorf("50 concurrent first connections minted %d leaves, want 1", got)
	}
}

func TestBadInputKeepsServing(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""), func(c *Config) { c.Policy.Limits.HandshakeTimeout = time.Second })

	t.Run("silent-client-closed", func(t *testing.T) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("read from a silent connection: err = %v, want EOF (closed by the proxy)", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v, want about the handshake timeout", d)
		}
	})
	t.Run("silent-after-connect", func(t *testing.T) {
		c := p.mustConnect(t, "origin.test:443")
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("read after CONNECT without a ClientHello: %v, want EOF", err)
		}
	})
	for _, junk := range []struct{ name, data string }{
		{"random-bytes", strings.Repeat("\x00\xff\x16\x03garbage", 4096)},
		{"malformed-connect", "CONNECT\r\n\r\n"},
		{"connect-bad-target", "CONNECT :::: HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"sslv2-hello-after-connect", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test\r\n\r\n\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"},
		{"tls-junk-to-proxy-port", "\x16\x03\x01\x00\x05hello"},
	} {
		t.Run(junk.name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, junk.data)
			io.Copy(io.Discard, c)
		})
	}
	resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://origin.test/")
	if resp.StatusCode != 200 {
		t.Fatalf("after bad input: status %d, body %q", resp.StatusCode, body)
	}
	if logs := p.logs(); !strings.Contains(logs, "disable SSLv2Hello") && !strings.Contains(logs, "offers SSL 2.0 only") {
		t.Errorf("the SSLv2 ClientHello was not explained in the log:\n%s", logs)
	}
}

func TestPlainHTTPForwarded(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "plain ok")
	}))
	defer backend.Close()
	_, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: startProxy(t, "").addr})}}
	resp, body := get(t, c, backend.URL+"/x")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "connect_ports") {
		t.Errorf("GET to port %s outside connect_ports = %d %q, want 403 naming connect_ports", port, resp.StatusCode, body)
	}

	p := startProxy(t, fmt.Sprintf("connect_ports = [443, %s]\n", port))
	c = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr})}}
	resp, body = get(t, c, backend.URL+"/x")
	if resp.StatusCode != 200 || body != "plain ok" {
		t.Errorf("GET through proxy = %d %q, want 200 \"plain ok\"", resp.StatusCode, body)
	}
}

func TestAppSessionResumption(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	p.eachResumingApp(t, func(t *testing.T, v uint16, resumed func() bool) {
		resumed()
		if !resumed() {
			t.Errorf("second connection did not resume its %s session", versionName(v))
		}
	})
}

// Session tickets are sealed with a key that rotates (every half of
// [limits] session_lifetime, rotated by hand here): a ticket still opens
// after one rotation, never after two, so a session resumes for at most
// session_lifetime however long tlsbridge runs.
func TestAppSessionTicketKeysRotate(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	p.eachResumingApp(t, func(t *testing.T, _ uint16, resumed func() bool) {
		if resumed() {
			t.Fatal("first connection resumed")
		}
		if err := p.srv.tickets.rotate(); err != nil {
			t.Fatal(err)
		}
		if !resumed() {
			t.Error("a ticket sealed before one rotation did not resume")
		}
		for range 2 {
			if err := p.srv.tickets.rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if resumed() {
			t.Error("a ticket sealed two rotations ago resumed")
		}
		if !resumed() {
			t.Error("the fresh ticket after a full handshake did not resume")
		}
	})
}

// eachResumingApp runs fn as a subtest for an app of TLS 1.0, 1.2 and 1.3
// with a session cache (resumingApp).
func (p *proxy) eachResumingApp(t *testing.T, fn func(t *testing.T, v uint16, resumed func() bool)) {
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(versionName(v), func(t *testing.T) { fn(t, v, p.resumingApp(t, v)) })
	}
}

// resumingApp returns an app of TLS version v with a session cache; each
// call is a GET on a new connection and reports whether it resumed.
func (p *proxy) resumingApp(t *testing.T, v uint16) func() bool {
	client := p.legacyClient(t, clientOpts{version: v})
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	return func() bool {
		t.Helper()
		tr.CloseIdleConnections()
		resp, _ := get(t, client, "https://origin.test/")
		return resp.TLS.DidResume
	}
}

// session_lifetime = "0s" turns resumption off; a reload turns it on again,
// and a reload that changes the lifetime drops the tickets sealed before.
func TestSessionLifetimeReload(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	cfg := pinConfig(o, "origin.test", "bump", "")
	p := startProxy(t, "[limits]\nsession_lifetime = \"0s\"\n"+cfg)
	setLifetime := func(d string) {
		t.Helper()
		pol, err := policy.Parse([]byte("[limits]\nsession_lifetime = \""+d+"\"\n"+cfg), "")
		if err != nil {
			t.Fatal(err)
		}
		p.srv.SetPolicy(pol)
	}
	p.eachResumingApp(t, func(t *testing.T, _ uint16, resumed func() bool) {
		setLifetime("0s")
		for i := range 2 {
			if resumed() {
				t.Fatalf("connection %d resumed with session_lifetime 0s", i)
			}
		}
		setLifetime("1h")
		resumed()
		if !resumed() {
			t.Fatal("no resumption after a reload to session_lifetime 1h")
		}
		setLifetime("10m")
		if resumed() {
			t.Error("a ticket sealed under session_lifetime 1h resumed after a reload to 10m")
		}
		if !resumed() {
			t.Error("no resumption under session_lifetime 10m")
		}
	})
}

func TestConstrainedCARefusesOtherHosts(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	authority := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "allowed.test")})
	p := startProxyCA(t, authority, pinConfig(o, "*", "bump", ""))

	resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://api.allowed.test/")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("permitted host: status %d, body %q", resp.StatusCode, body)
	}
	_, err := p.connect("elsewhere.test:443")
	var ce *connectError
	if !errors.As(err, &ce) || ce.status != http.StatusForbidden {
		t.Fatalf("CONNECT to a host outside permitted_hosts: err = %v, want 403", err)
	}
	if !strings.Contains(ce.body, "permitted_hosts") {
		t.Errorf("403 body %q does not name permitted_hosts", ce.body)
	}
}

// [ca] leaf_key forces the key type, and a reloaded policy changes it.
func TestLeafKeyFollowsPolicy(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, "[ca]\nleaf_key = \"rsa2048\"\n"+pinConfig(o, "*.leafkey.test", "bump", ""))
	leaf := func(host string) x509.PublicKeyAlgorithm {
		resp, _ := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://"+host+"/")
		return resp.TLS.PeerCertificates[0].PublicKeyAlgorithm
	}
	if got := leaf("a.leafkey.test"); got != x509.RSA {
		t.Errorf("leaf_key = rsa2048: leaf key %v, want RSA", got)
	}
	pol, err := policy.Parse([]byte(pinConfig(o, "*.leafkey.test", "bump", "")), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol)
	if got := leaf("b.leafkey.test"); got != x509.ECDSA {
		t.Errorf("after reload to leaf_key = auto: leaf key %v, want ECDSA", got)
	}
}

// waitReturn waits up to timeout for a Serve or ServeListener call, which
// sends its result on done, and wants it to return nil.
func waitReturn(t testing.TB, done <-chan error, what string, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s = %v, want nil", what, err)
		}
	case <-time.After(timeout):
		// The stacks say which goroutine did not end: a flake seen once
		// in CI is diagnosable from its log alone.
		var buf strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("%s did not return within %v; goroutines:\n%s", what, timeout, buf.String())
	}
}
