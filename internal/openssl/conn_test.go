//go:build openssl && cgo

package openssl_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
	"github.com/tlsbridge/tlsbridge/internal/openssl"
)

// legacySuites is what an app of the Windows XP / Java 6 era offers.
var legacySuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

type fixture struct {
	a     *ca.Authority
	certs *ca.Cache
	roots string // the CA as a PEM file
}

func newFixture(tb testing.TB) *fixture {
	a := catest.New(tb)
	roots := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(roots, a.CertPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return &fixture{a: a, certs: catest.NewCache(tb, a), roots: roots}
}

// xpClient is an OpenSSL client of a Windows XP-era app trusting the
// fixture's CA: TLS 1.0, RSA key exchange (AES128-SHA), resuming by
// session ID, and by ticket only when tickets is set.
func (f *fixture) xpClient(tb testing.TB, tickets bool) *openssl.Ctx {
	tb.Helper()
	c, err := openssl.NewClientCtx(openssl.ClientConfig{RootsFile: f.roots, CipherList: "AES128-SHA:@SECLEVEL=0",
		MaxVersion: tls.VersionTLS10, NoTickets: !tickets})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// serve accepts n connections on a loopback listener with the OpenSSL
// server, echoes one line on each and returns the states.
func (f *fixture) serve(t *testing.T, ctx *openssl.Ctx, name string, protos []string, n int) (string, <-chan openssl.State) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cert, err := f.certs.Get(name, ca.KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan openssl.State, n)
	go func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc, err := ctx.Server(c, openssl.ConnConfig{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12,
					Certificate: cert, NextProtos: protos, SessionContext: []byte(name)})
				if err != nil {
					t.Error(err)
					c.Close()
					return
				}
				defer sc.Close()
				sc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := sc.Handshake(context.Background()); err != nil {
					t.Logf("server handshake: %v", err)
					states <- openssl.State{}
					return
				}
				states <- sc.State()
				buf := make([]byte, 4096)
				var got []byte
				for !bytes.Contains(got, []byte("\n")) {
					m, err := sc.Read(buf)
					if err != nil {
						return
					}
					got = append(got, buf[:m]...)
				}
				sc.Write(bytes.ToUpper(got))
			}()
		}
	}()
	return ln.Addr().String(), states
}

func serverCtx(t *testing.T, size int, life time.Duration) *openssl.Ctx {
	t.Helper()
	ctx, err := openssl.NewServerCtx(openssl.ServerConfig{CipherSuites: legacySuites, SessionCacheSize: size, SessionLifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestGoClientsAllVersions(t *testing.T) {
	f := newFixture(t)
	pool := x509.NewCertPool()
	pool.AddCert(f.a.Cert)
	for _, tc := range []struct {
		name  string
		vers  uint16
		suite uint16
	}{
		{"tls10-rsa-kex", tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{"tls11-ecdhe", tls.VersionTLS11, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"tls12-rsa-kex", tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_CBC_SHA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, states := f.serve(t, serverCtx(t, 0, 0), "app.test", []string{"http/1.1"}, 1)
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "app.test", RootCAs: pool,
				MinVersion: tc.vers, MaxVersion: tc.vers, CipherSuites: []uint16{tc.suite}, NextProtos: []string{"h2", "http/1.1"}})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			payload := strings.Repeat("x", 40000) + "\n" // several records each way
			if _, err := io.WriteString(c, payload); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != strings.ToUpper(payload) {
				t.Fatalf("echo: %d bytes, want %d", len(got), len(payload))
			}
			st := <-states
			cs := c.ConnectionState()
			if st.Version != tc.vers || st.CipherSuite != tc.suite || st.NegotiatedProtocol != "http/1.1" || cs.NegotiatedProtocol != "http/1.1" {
				t.Fatalf("state %+v, client %x/%x/%q", st, cs.Version, cs.CipherSuite, cs.NegotiatedProtocol)
			}
		})
	}
}

// The engine sends the chain the leaf cache made, as crypto/tls does: for
// a sub-CA (docs/fleet.md: `ca import -chain`) the intermediate, so an app
// that trusts only the organisation's root verifies the leaf; for
// tlsbridge's own CA the leaf and that CA.
func TestChainSent(t *testing.T) {
	root := catest.NewRoot(t)
	certPEM, keyPEM := root.Intermediate(t, "instance sub-CA")
	sub, err := ca.ParseWithChain(certPEM, keyPEM, root.PEM)
	if err != nil {
		t.Fatal(err)
	}
	plain := newFixture(t)
	for _, tc := range []struct {
		name  string
		f     *fixture
		roots *x509.CertPool
		certs int
	}{
		{"sub-ca", &fixture{a: sub, certs: catest.NewCache(t, sub)}, root.Pool(), 2},
		{"own-ca", plain, poolOf(plain.a.Cert), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, states := tc.f.serve(t, serverCtx(t, 0, 0), "app.test", nil, 1)
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "app.test", RootCAs: tc.roots,
				MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			<-states
			if n := len(c.ConnectionState().PeerCertificates); n != tc.certs {
				t.Fatalf("the engine sent %d certificates, want %d", n, tc.certs)
			}
		})
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// dialOpenSSL connects an OpenSSL client (session IDs only, like XP) and
// exchanges one line.
func dialOpenSSL(t *testing.T, ctx *openssl.Ctx, addr, name string, sess *openssl.Session) (*openssl.Session, openssl.State) {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ctx.Client(raw, name, sess)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(context.Background()); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "PING\n" {
		t.Fatalf("echo %q, %v", got, err)
	}
	return c.Session(), c.State()
}

func TestCipherSuites(t *testing.T) {
	got := serverCtx(t, 0, 0).CipherSuites()
	if !slices.Contains(got, tls.TLS_RSA_WITH_AES_128_CBC_SHA) || !slices.Contains(got, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA) {
		t.Fatalf("CipherSuites() = %x, want the AES suites asked for", got)
	}
	for _, id := range got {
		if !slices.Contains(legacySuites, id) {
			t.Fatalf("CipherSuites() = %x: %x was not asked for", got, id)
		}
	}
}

func TestSessionIDResumption(t *testing.T) {
	f := newFixture(t)
	client := f.xpClient(t, false)
	srv := serverCtx(t, 0, 0)
	addr, states := f.serve(t, srv, "app.test", nil, 3)
	sess, _ := dialOpenSSL(t, client, addr, "app.test", nil)
	if first := <-states; first.DidResume || first.Version != tls.VersionTLS10 {
		t.Fatalf("first handshake: %+v, want a full TLS 1.0 one", first)
	}
	if len(sess.ID()) == 0 {
		t.Fatal("the server answered with an empty session ID")
	}
	if _, st := dialOpenSSL(t, client, addr, "app.test", sess); !st.DidResume {
		t.Fatal("client: second connection not resumed")
	}
	if st := <-states; !st.DidResume {
		t.Fatal("server: second connection not resumed")
	}
	// Another session context (another leaf name, or a new CA) never
	// resumes a session: the app would skip the certificate it must see.
	other, otherStates := f.serve(t, srv, "other.test", nil, 1)
	if _, st := dialOpenSSL(t, client, other, "other.test", sess); st.DidResume {
		t.Fatal("a session of app.test resumed on other.test")
	}
	<-otherStates
}

func TestSessionCacheBoundedAndExpires(t *testing.T) {
	f := newFixture(t)
	client := f.xpClient(t, false)
	srv := serverCtx(t, 4, time.Second)
	addr, states := f.serve(t, srv, "app.test", nil, 13)
	var first *openssl.Session
	for i := range 10 {
		s, _ := dialOpenSSL(t, client, addr, "app.test", nil)
		<-states
		if i == 0 {
			first = s
		}
	}
	if n := srv.Sessions(); n != 4 {
		t.Fatalf("cache holds %d sessions after 10 full handshakes, want its bound, 4", n)
	}
	if _, st := dialOpenSSL(t, client, addr, "app.test", first); st.DidResume {
		t.Fatal("the oldest of 10 sessions resumed from a cache of 4")
	}
	<-states
	last, _ := dialOpenSSL(t, client, addr, "app.test", nil)
	<-states
	time.Sleep(2100 * time.Millisecond) // OpenSSL counts whole seconds
	if _, st := dialOpenSSL(t, client, addr, "app.test", last); st.DidResume {
		t.Fatal("a session resumed after its 1 s lifetime")
	}
}

// A smaller cache bound set while the cache is full takes effect at the
// next new session: the cache shrinks to it, keeping the newest.
func TestSetSessionCacheSize(t *testing.T) {
	f := newFixture(t)
	client := f.xpClient(t, false)
	srv := serverCtx(t, 8, 0)
	addr, states := f.serve(t, srv, "app.test", nil, 10)
	var first, sixth *openssl.Session
	for i := range 6 {
		s, _ := dialOpenSSL(t, client, addr, "app.test", nil)
		<-states
		switch i {
		case 0:
			first = s
		case 5:
			sixth = s
		}
	}
	if n := srv.Sessions(); n != 6 {
		t.Fatalf("cache holds %d sessions after 6 full handshakes, want 6", n)
	}
	srv.SetSessionCacheSize(2)
	newest, _ := dialOpenSSL(t, client, addr, "app.test", nil)
	<-states
	if n := srv.Sessions(); n != 2 {
		t.Fatalf("cache holds %d sessions after shrinking to 2 and one new session, want 2", n)
	}
	if n := srv.Evicted(); n != 5 {
		t.Errorf("Evicted() = %d after 7 sessions in a cache of 2, want 5", n)
	}
	for i, s := range []*openssl.Session{sixth, newest} {
		if _, st := dialOpenSSL(t, client, addr, "app.test", s); !st.DidResume {
			t.Fatalf("session %d of the 2 newest did not resume after the cache shrank", i+1)
		}
		<-states
	}
	if _, st := dialOpenSSL(t, client, addr, "app.test", first); st.DidResume {
		t.Fatal("the oldest session resumed after the cache shrank to 2")
	}
	<-states
}

// SetResumption(false) stops resumption by ID and by ticket, also of the
// sessions cached before, and hands out neither; on again, the cached
// session resumes.
func TestSetResumption(t *testing.T) {
	f := newFixture(t)
	byID, byTicket := f.xpClient(t, false), f.xpClient(t, true)
	srv := serverCtx(t, 0, 0)
	addr, states := f.serve(t, srv, "app.test", nil, 7)
	dial := func(c *openssl.Ctx, s *openssl.Session) (*openssl.Session, bool) {
		t.Helper()
		s, st := dialOpenSSL(t, c, addr, "app.test", s)
		<-states
		return s, st.DidResume
	}
	idSess, _ := dial(byID, nil)
	ticketSess, _ := dial(byTicket, nil)
	srv.SetResumption(false)
	if _, resumed := dial(byID, idSess); resumed {
		t.Error("resumption off: a cached session resumed by ID")
	}
	if _, resumed := dial(byTicket, ticketSess); resumed {
		t.Error("resumption off: a ticket resumed")
	}
	if s, _ := dial(byTicket, nil); len(s.ID()) != 0 || s.LifetimeHint() != 0 {
		t.Errorf("resumption off: the app got a %d-byte session ID and a ticket hint of %v; want neither", len(s.ID()), s.LifetimeHint())
	}
	held := srv.Sessions()
	srv.SetResumption(true)
	if _, resumed := dial(byID, idSess); !resumed {
		t.Error("resumption on again: the session cached before did not resume")
	}
	if held != 1 {
		t.Errorf("resumption off: the cache holds %d sessions, want the one from before (a ticket session is not cached)", held)
	}
}

func TestTicketLifetimeHint(t *testing.T) {
	f := newFixture(t)
	pool := x509.NewCertPool()
	pool.AddCert(f.a.Cert)
	addr, states := f.serve(t, serverCtx(t, 0, 90*time.Minute), "app.test", nil, 2)
	cache := tls.NewLRUClientSessionCache(4)
	cfg := &tls.Config{ServerName: "app.test", RootCAs: pool, MaxVersion: tls.VersionTLS12, ClientSessionCache: cache}
	for i := range 2 {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "ping\n")
		io.ReadAll(c)
		c.Close()
		if st := <-states; st.DidResume != (i == 1) {
			t.Fatalf("connection %d: resumed=%v", i, st.DidResume)
		}
	}
}

// The ticket lifetime hint is the session lifetime, and SetSessionLifetime
// changes it for the sessions made from then on (a reload of [limits]
// session_lifetime).
func TestSetSessionLifetime(t *testing.T) {
	f := newFixture(t)
	client, err := openssl.NewClientCtx(openssl.ClientConfig{RootsFile: f.roots, CipherList: "AES128-SHA:@SECLEVEL=0",
		MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := serverCtx(t, 0, 90*time.Minute)
	addr, states := f.serve(t, srv, "app.test", nil, 2)
	if sess, _ := dialOpenSSL(t, client, addr, "app.test", nil); sess.LifetimeHint() != 90*time.Minute {
		t.Errorf("ticket lifetime hint %v, want 1h30m", sess.LifetimeHint())
	}
	<-states
	srv.SetSessionLifetime(10 * time.Minute)
	if sess, _ := dialOpenSSL(t, client, addr, "app.test", nil); sess.LifetimeHint() != 10*time.Minute {
		t.Errorf("after SetSessionLifetime(10m): ticket lifetime hint %v, want 10m", sess.LifetimeHint())
	}
	<-states
}

func TestHostileInput(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"truncated-hello", []byte{0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00}},
		{"sslv2-header-only", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}},
		{"huge-record", append([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, make([]byte, 70000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, states := f.serve(t, serverCtx(t, 0, 0), "app.test", nil, 1)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(tc.in)
			if tcp, ok := c.(*net.TCPConn); ok {
				tcp.CloseWrite()
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.ReadAll(c)
			c.Close()
			if st := <-states; st.Version != 0 {
				t.Fatalf("handshake succeeded on %s: %+v", tc.name, st)
			}
		})
	}
}

func TestErrorsClassify(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert, _ := f.certs.Get("app.test", ca.KeyRSA2048)
	srv := serverCtx(t, 0, 0)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		sc, _ := srv.Server(c, openssl.ConnConfig{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, Certificate: cert})
		defer sc.Close()
		done <- sc.Handshake(context.Background())
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "app.test", RootCAs: x509.NewCertPool(),
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		c.Close()
		t.Fatal("handshake with no shared cipher succeeded")
	}
	if err := <-done; !errors.Is(err, openssl.ErrNoSharedCipher) {
		t.Fatalf("server error %v, want ErrNoSharedCipher", err)
	}
}
