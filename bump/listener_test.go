package bump

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca/catest"
	"github.com/tlsbridge/tlsbridge/policy"
)

// streamServer is an upstream for byte streams: it reads until the peer
// half-closes, then writes everything back and closes. A complete reply thus
// proves both the byte-exact relay and that the half-close got through while
// the other direction stayed open.
type streamServer struct {
	addr     string
	caFile   string      // PEM of its CA; "" for plain TCP
	versions chan uint16 // TLS version of each connection, 0 for plain TCP
}

// newStreamServer starts a stream server; versions > 0 make it a TLS server
// accepting minV..maxV with a certificate for origin.test and 127.0.0.1.
func newStreamServer(t testing.TB, minV, maxV uint16) *streamServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss := &streamServer{addr: ln.Addr().String(), versions: make(chan uint16, 16)}
	var cfg *tls.Config
	if minV != 0 {
		oca := catest.New(t)
		cfg = &tls.Config{
			MinVersion:   minV,
			MaxVersion:   maxV,
			Certificates: []tls.Certificate{catest.ServerCert(t, oca, "origin.test", "127.0.0.1")},
		}
		ss.caFile = oca.CertPath() // catest keeps the CA on disk
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { ss.echo(c, cfg) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ss
}

func (ss *streamServer) echo(c net.Conn, cfg *tls.Config) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var version uint16
	if cfg != nil {
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		version = tc.ConnectionState().Version
		c = tc
	}
	select {
	case ss.versions <- version:
	default:
	}
	data, err := io.ReadAll(c)
	if err != nil {
		return
	}
	c.Write(data)
}

// runListener serves p's listener[i] on a fresh loopback port and returns its
// address and a stop function that ends ServeListener and reports how long
// it took to return.
func runListener(t testing.TB, p *proxy, i int) (addr string, stop func() time.Duration) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.srv.ServeListener(ctx, ln, p.srv.Policy().Listeners[i]) }()
	var once sync.Once
	var took time.Duration
	stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			waitReturn(t, done, "ServeListener after its context ended", 10*time.Second)
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop
}

// listenerConfig is one [[listener]] forwarding to addr, verified against
// caFile as origin.test; extra goes at the end of the [[listener]] table.
func listenerConfig(addr, caFile, extra string) string {
	cafiles := "[]"
	if caFile != "" {
		cafiles = fmt.Sprintf("[%q]", caFile)
	}
	return fmt.Sprintf(`
[[listener]]
listen = "127.0.0.1:0"
server_name = "origin.test"
%s
[listener.upstream]
address = %q
ca_files = %s
`, extra, addr, cafiles)
}

// roundTrip writes payload, half-closes, and reads the reply to EOF.
func roundTrip(t testing.TB, c net.Conn, payload []byte) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = closeWriteErr(c)
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write payload: %v", err)
	}
	return got
}

func closeWriteErr(c net.Conn) error {
	switch cc := c.(type) {
	case *tls.Conn:
		return cc.CloseWrite()
	case *net.TCPConn:
		return cc.CloseWrite()
	}
	return fmt.Errorf("%T cannot half-close", c)
}

// appTLS is a (legacy) app's TLS config trusting only the proxy's CA.
func (p *proxy) appTLS(version uint16, suites []uint16) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	return &tls.Config{
		MinVersion:   version, //nolint:gosec // the test plays a legacy app
		MaxVersion:   version,
		CipherSuites: suites,
		RootCAs:      roots,
		ServerName:   "origin.test",
	}
}

func TestListenerPlainAppRoundTrip(t *testing.T) {
	up := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS12)
	p := startProxy(t, listenerConfig(up.addr, up.caFile, "client_tls = false"))
	addr, _ := runListener(t, p, 0)

	const size = 4 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	got := roundTrip(t, c, payload)
	t.Logf("%d MiB each way through a client_tls=false listener in %v", size>>20, time.Since(start))
	if !bytes.Equal(got, payload) {
		t.Fatalf("reply: %d bytes, want the %d bytes sent back exactly", len(got), len(payload))
	}
	if v := <-up.versions; v != tls.VersionTLS12 {
		t.Errorf("upstream negotiated %s, want TLS1.2", versionName(v))
	}
	waitLog(t, p, "bytes_out=4194304")
	logs := p.logs()
	for _, want := range []string{"action=listener", "rule=\"listener[0]\"", "bytes_in=4194304", "client_tls=-", "upstream_tls=TLS1.2", "upstream_cipher=TLS_ECDHE"} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %q:\n%s", want, logs)
		}
	}
}

func TestListenerLegacyTLSApp(t *testing.T) {
	up := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, listenerConfig(up.addr, up.caFile, "client_tls = true\n[listener.client]\nmin_tls = \"1.0\""))
	addr, _ := runListener(t, p, 0)

	tests := []struct {
		name    string
		version uint16
		suites  []uint16
	}{
		{"tls10", tls.VersionTLS10, nil},
		{"tls11", tls.VersionTLS11, nil},
		{"tls10-rsa-kex-only", tls.VersionTLS10, []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}},
		{"tls13", tls.VersionTLS13, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, p.appTLS(tt.version, tt.suites))
			if err != nil {
				t.Fatalf("TLS handshake with the listener: %v", err)
			}
			defer c.Close()
			cs := c.ConnectionState()
			if cs.Version != tt.version {
				t.Errorf("app TLS = %s, want %s", versionName(cs.Version), versionName(tt.version))
			}
			if got, want := cs.PeerCertificates[0].Issuer.String(), p.ca.Cert.Subject.String(); got != want {
				t.Errorf("leaf issuer = %q, want tlsbridge's CA %q", got, want)
			}
			payload := []byte("legacy line protocol\nsecond line\n")
			if got := roundTrip(t, c, payload); !bytes.Equal(got, payload) {
				t.Errorf("reply = %q, want %q", got, payload)
			}
			if v := <-up.versions; v < tls.VersionTLS12 {
				t.Errorf("upstream negotiated %s, want TLS1.2+", versionName(v))
			}
		})
	}
	waitLog(t, p, "client_tls=TLS1.0")
	if logs := p.logs(); !strings.Contains(logs, "upstream_tls=TLS1.3") {
		t.Errorf("access log lacks the upstream version:\n%s", logs)
	}
}

func TestListenerTLSFrontToPlainBackend(t *testing.T) {
	backend := newStreamServer(t, 0, 0)
	p := startProxy(t, listenerConfig(backend.addr, "", "client_tls = true\nupstream_tls = false"))
	addr, _ := runListener(t, p, 0)

	c, err := tls.Dial("tcp", addr, p.appTLS(tls.VersionTLS10, nil))
	if err != nil {
		t.Fatalf("TLS handshake with the listener: %v", err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	if got := roundTrip(t, c, payload); !bytes.Equal(got, payload) {
		t.Fatalf("reply: %d bytes, want %d sent back exactly", len(got), len(payload))
	}
	if v := <-backend.versions; v != 0 {
		t.Errorf("backend saw TLS %s, want plain TCP", versionName(v))
	}
	waitLog(t, p, "bytes_out=1048576")
	if logs := p.logs(); !strings.Contains(logs, "client_tls=TLS1.0") || !strings.Contains(logs, "upstream_tls=-") {
		t.Errorf("access log lacks client_tls=TLS1.0 and upstream_tls=-:\n%s", logs)
	}
}

// protoHandler answers with the HTTP version it was asked in.
var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Origin-Proto", r.Proto)
	fmt.Fprint(w, "hello over ", r.Proto)
})

// newHTTPOrigin starts an HTTPS origin that reports the protocol it served;
// h2 turns on HTTP/2 (ALPN h2), else it only offers http/1.1.
func newHTTPOrigin(t testing.TB, h2 bool) *streamServer {
	t.Helper()
	o := startOrigin(t, h2, protoHandler)
	return &streamServer{addr: o.addr, caFile: o.caFile}
}

// newH2CBackend starts a plain-TCP backend that speaks HTTP/2 with prior
// knowledge (h2c), like a gRPC server behind a TLS front.
func newH2CBackend(t testing.TB) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(protoHandler)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protos
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestListenerALPN(t *testing.T) {
	h2 := newHTTPOrigin(t, true)
	h1 := newHTTPOrigin(t, false)
	h2c := newH2CBackend(t)
	tests := []struct {
		name   string
		config string
		want   string // protocol both the app and the origin use
	}{
		{"h2-both-legs", listenerConfig(h2.addr, h2.caFile, "client_tls = true"), "HTTP/2.0"},
		{"upstream-without-h2", listenerConfig(h1.addr, h1.caFile, "client_tls = true"), "HTTP/1.1"},
		{"pinned-h2-matches", listenerConfig(h2.addr, h2.caFile, "client_tls = true\nalpn = [\"h2\", \"http/1.1\"]"), "HTTP/2.0"},
		{"pinned-http1-only", listenerConfig(h2.addr, h2.caFile, "client_tls = true\nalpn = [\"http/1.1\"]"), "HTTP/1.1"},
		{"pinned-h2-plain-backend", listenerConfig(h2c, "", "client_tls = true\nupstream_tls = false\nalpn = [\"h2\"]"), "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tt.config)
			addr, _ := runListener(t, p, 0)
			tr := &http.Transport{
				TLSClientConfig:   p.appTLS(0, nil),
				ForceAttemptHTTP2: true,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr) // the app's hosts file points origin.test here
				},
			}
			tr.TLSClientConfig.MinVersion, tr.TLSClientConfig.MaxVersion = tls.VersionTLS12, tls.VersionTLS13
			defer tr.CloseIdleConnections()
			resp, body := get(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://origin.test/")
			if resp.Proto != tt.want {
				t.Errorf("app's response proto = %s, want %s", resp.Proto, tt.want)
			}
			if got := resp.Header.Get("X-Origin-Proto"); got != tt.want {
				t.Errorf("origin served %s, want %s", got, tt.want)
			}
			if want := "hello over " + tt.want; body != want {
				t.Errorf("body = %q, want %q", body, want)
			}
		})
	}
}

// HTTP/2 needs TLS 1.2 (RFC 9113 section 9.2): a TLS 1.0 app that offers h2
// anyway is not given h2, and the upstream is not offered it (this origin
// only speaks h2, so it then negotiates no ALPN and serves HTTP/1.1).
func TestListenerNoH2BelowTLS12(t *testing.T) {
	h2 := newHTTPOrigin(t, true)
	p := startProxy(t, listenerConfig(h2.addr, h2.caFile, "client_tls = true"))
	addr, _ := runListener(t, p, 0)
	for _, tt := range []struct {
		version uint16
		wantH2  bool
	}{
		{tls.VersionTLS10, false},
		{tls.VersionTLS11, false},
		{tls.VersionTLS12, true},
	} {
		t.Run(versionName(tt.version), func(t *testing.T) {
			cfg := p.appTLS(tt.version, nil)
			cfg.NextProtos = []string{"h2", "http/1.1"}
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatalf("TLS handshake with the listener: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; (got == "h2") != tt.wantH2 {
				t.Errorf("ALPN = %q, want h2: %v", got, tt.wantH2)
			}
		})
	}
}

func TestListenerUpstreamVerificationFailure(t *testing.T) {
	untrusted := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS13)
	for _, tt := range []struct {
		name, extra string
	}{
		{"plain-app", "client_tls = false"},
		{"tls-app", "client_tls = true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, listenerConfig(untrusted.addr, "", tt.extra)) // no ca_files: the origin's CA is unknown
			addr, _ := runListener(t, p, 0)
			start := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if tt.name == "tls-app" {
				tc := tls.Client(c, p.appTLS(tls.VersionTLS10, nil))
				if err := tc.Handshake(); err == nil {
					t.Fatal("app handshake succeeded, want the connection closed")
				}
			} else {
				if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
					t.Fatalf("read = %d, %v; want the connection closed", n, err)
				}
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("closed after %v, want at once", d)
			}
			waitLog(t, p, "upstream failed")
			logs := p.logs()
			for _, want := range []string{"unknown authority", "ca_files", "[listener.upstream] of listener[0]", "hint=", "stage=upstream-handshake"} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
		})
	}
}

func TestListenerPlainBytesToTLSListener(t *testing.T) {
	up := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, listenerConfig(up.addr, up.caFile, "client_tls = true"))
	addr, _ := runListener(t, p, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "HELLO plain\n")
	io.Copy(io.Discard, c)
	waitLog(t, p, "set client_tls = false")
}

func TestListenerShutdownClosesConnections(t *testing.T) {
	up := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, listenerConfig(up.addr, up.caFile, "client_tls = false"))
	addr, stop := runListener(t, p, 0)

	// An open relay: the stream server waits for a half-close that never comes.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "pending"); err != nil {
		t.Fatal(err)
	}
	<-up.versions // the upstream leg is up

	took := stop()
	if took > p.srv.Policy().Limits.DrainTimeout+2*time.Second {
		t.Errorf("ServeListener returned %v after its context ended, want about DrainTimeout (%v)", took, p.srv.Policy().Limits.DrainTimeout)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); isTimeout(err) {
		t.Errorf("app connection still open after shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("listener still accepts after shutdown")
	}
}

// The same listener served after Server.Close stops at once.
func TestListenerStopsOnServerClose(t *testing.T) {
	up := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS13)
	pol, err := policy.Parse([]byte(listenerConfig(up.addr, up.caFile, "")), "")
	if err != nil {
		t.Fatal(err)
	}
	pol.Limits.DrainTimeout = time.Second
	srv, err := New(Config{Policy: pol, Certs: catest.NewCache(t, catest.New(t))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(context.Background(), ln, pol.Listeners[0]) }()
	srv.Close()
	waitReturn(t, done, "ServeListener after Server.Close", 5*time.Second)
}

// waitLog waits until the proxy has logged want: access lines are written
// after the relay ends, which may be just after the app saw EOF.
func waitLog(t testing.TB, p *proxy, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q after 5 s:\n%s", want, p.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
