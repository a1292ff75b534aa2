//go:build openssl && cgo

package bump

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/openssl"
	"github.com/tlsbridge/tlsbridge/policy"
)

// handshakes reads tlsbridge_app_handshakes_total{engine,resumed}.
func handshakes(t *testing.T, p *proxy, engine string, resumed bool) float64 {
	t.Helper()
	srv := httptest.NewServer(p.srv.MetricsHandler())
	defer srv.Close()
	return scrape(t, srv.URL)[fmt.Sprintf(`tlsbridge_app_handshakes_total{engine=%q,resumed="%t"}`, engine, resumed)]
}

func TestLegacyEngineChosenPerHello(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	for _, tc := range []struct {
		name      string
		opts      clientOpts
		noTickets bool
		engine    string
	}{
		// ECDHE and tickets: crypto/tls, cheaper for it (engine.go).
		{"tls10-ecdhe-tickets-go", clientOpts{version: tls.VersionTLS10}, false, "go"},
		// No session_ticket extension: it can only resume by ID.
		{"tls10-ecdhe-no-tickets-openssl", clientOpts{version: tls.VersionTLS10}, true, "openssl"},
		{"tls11-rsa-kex-openssl", clientOpts{version: tls.VersionTLS11, suites: []uint16{tls.TLS_RSA_WITH_AES_256_CBC_SHA}}, false, "openssl"},
		// Debian's libssl has no 3DES: crypto/tls, which does, keeps the app.
		{"tls10-3des-only-go", clientOpts{version: tls.VersionTLS10, suites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}, true, "go"},
		{"tls12-no-tickets-go", clientOpts{version: tls.VersionTLS12}, true, "go"},
		{"tls13-go", clientOpts{version: tls.VersionTLS13}, false, "go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := handshakes(t, p, tc.engine, false)
			client := p.legacyClient(t, tc.opts)
			cfg := client.Transport.(*http.Transport).TLSClientConfig
			// Go's client sends the session_ticket extension only with a
			// cache, as OpenSSL-based apps always do unless told not to.
			cfg.SessionTicketsDisabled = tc.noTickets
			if !tc.noTickets {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			resp, body := get(t, client, "https://origin.test/")
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello from origin") {
				t.Fatalf("status %d, body %q", resp.StatusCode, body)
			}
			if got := handshakes(t, p, tc.engine, false); got != before+1 {
				t.Fatalf("engine %s handshakes %v → %v, want one more", tc.engine, before, got)
			}
		})
	}
}

// sessionClient is an OpenSSL app that resumes by session ID only, as
// Windows XP and Java 6 do, through the proxy's CONNECT.
func sessionClient(t *testing.T, p *proxy) (*openssl.Ctx, func(*openssl.Session) (*openssl.Session, openssl.State)) {
	roots := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(roots, p.ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, err := openssl.NewClientCtx(openssl.ClientConfig{RootsFile: roots, MaxVersion: tls.VersionTLS10,
		CipherList: "AES128-SHA:@SECLEVEL=0", NoTickets: true})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, func(sess *openssl.Session) (*openssl.Session, openssl.State) {
		t.Helper()
		raw := p.mustConnect(t, "origin.test:443")
		c, err := ctx.Client(raw, "origin.test", sess)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.Handshake(context.Background()); err != nil {
			t.Fatalf("handshake through the proxy: %v", err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("response %v, %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		return c.Session(), c.State()
	}
}

func TestLegacySessionIDResumption(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	_, dial := sessionClient(t, p)
	sess, st := dial(nil)
	if st.DidResume || len(sess.ID()) == 0 {
		t.Fatalf("first connection: resumed=%v, session ID %x; want a full handshake and an ID", st.DidResume, sess.ID())
	}
	if _, st := dial(sess); !st.DidResume {
		t.Fatal("second connection did not resume by session ID")
	}
	if got := handshakes(t, p, "openssl", true); got != 1 {
		t.Errorf("resumed openssl handshakes = %v, want 1", got)
	}
	// The access line is written when the relay ends, after the app read
	// its response.
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := p.logs()
		if strings.Contains(logs, "client_resumed=true") && strings.Contains(logs, "client_resumed=false") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access lines lack client_resumed:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// session_lifetime = "0s": the legacy engine resumes no session by ID
// either; a reload to a lifetime turns it on.
func TestLegacySessionLifetimeZero(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	cfg := pinConfig(o, "origin.test", "bump", "")
	p := startProxy(t, "[limits]\nsession_lifetime = \"0s\"\n"+cfg)
	_, dial := sessionClient(t, p)
	sess, _ := dial(nil)
	if _, st := dial(sess); st.DidResume {
		t.Fatal("resumed by session ID with session_lifetime 0s")
	}
	if held, evicted := p.srv.legacy.sessions(); held != 0 || evicted != 0 || len(sess.ID()) != 0 {
		t.Errorf("session_lifetime 0s: the cache holds %d sessions (%d evicted), the app got a %d-byte session ID; want none",
			held, evicted, len(sess.ID()))
	}
	pol, err := policy.Parse([]byte("[limits]\nsession_lifetime = \"5m\"\n"+cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol)
	sess, _ = dial(nil)
	if _, st := dial(sess); !st.DidResume {
		t.Fatal("no resumption by session ID after a reload to session_lifetime 5m")
	}
	// An app offering a session cached before a reload to "0s" (still in
	// the cache) does not resume it either.
	off, err := policy.Parse([]byte("[limits]\nsession_lifetime = \"0s\"\n"+cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(off)
	if _, st := dial(sess); st.DidResume {
		t.Fatal("a session cached before a reload to session_lifetime 0s resumed after it")
	}
}

// [limits] session_cache_size bounds the engine's cache, and a reload to a
// smaller size shrinks it at the next new session; /metrics shows what the
// cache holds and what it dropped for room.
func TestLegacySessionCacheSize(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	cfg := pinConfig(o, "origin.test", "bump", "")
	p := startProxy(t, "[limits]\nsession_cache_size = 3\n"+cfg)
	_, dial := sessionClient(t, p)
	var sessions []*openssl.Session
	for range 5 {
		s, _ := dial(nil)
		sessions = append(sessions, s)
	}
	cache := func() (held, evicted float64) {
		srv := httptest.NewServer(p.srv.MetricsHandler())
		defer srv.Close()
		m := scrape(t, srv.URL)
		return m["tlsbridge_legacy_sessions"], m["tlsbridge_legacy_session_evictions_total"]
	}
	if held, evicted := cache(); held != 3 || evicted != 2 {
		t.Errorf("after 5 sessions in a cache of 3: held %v, evicted %v; want 3 and 2", held, evicted)
	}
	if _, st := dial(sessions[0]); st.DidResume {
		t.Error("the oldest of 5 sessions resumed from a cache of 3")
	}
	pol, err := policy.Parse([]byte("[limits]\nsession_cache_size = 1\n"+cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol)
	last, _ := dial(nil)
	if held, _ := cache(); held != 1 {
		t.Errorf("after a reload to session_cache_size 1 and a new session: held %v, want 1", held)
	}
	if _, st := dial(last); !st.DidResume {
		t.Error("the newest session did not resume from a cache of 1")
	}
}

// The session cache is the engine's, not the snapshot's: a reload keeps
// it; a new CA would not (sessionContext), which TestSessionIDResumption in
// internal/openssl shows for another context.
func TestLegacySessionsSurviveReload(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	cfg := pinConfig(o, "origin.test", "bump", "")
	p := startProxy(t, cfg)
	_, dial := sessionClient(t, p)
	sess, _ := dial(nil)
	p.srv.SetPolicy(p.srv.rt.Load().pol)
	if _, st := dial(sess); !st.DidResume {
		t.Fatal("a reload dropped the session cache")
	}
}

// javaSSLv2Hello is an SSLv2-format ClientHello as Java 6 sends it: TLS 1.0,
// TLS suites as 3-byte specs, no session ID, a 32-byte challenge.
func javaSSLv2Hello(version uint16, suites []uint16, challenge int) []byte {
	body := []byte{0x01, byte(version >> 8), byte(version)}
	body = binary.BigEndian.AppendUint16(body, uint16(3*len(suites)))
	body = binary.BigEndian.AppendUint16(body, 0)
	body = binary.BigEndian.AppendUint16(body, uint16(challenge))
	for _, s := range suites {
		body = append(body, 0, byte(s>>8), byte(s))
	}
	ch := make([]byte, challenge)
	rand.Read(ch)
	body = append(body, ch...)
	return append([]byte{0x80 | byte(len(body)>>8), byte(len(body))}, body...)
}

func TestSSLv2HelloServed(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	for _, tc := range []struct {
		name  string
		hello []byte
		serve bool
	}{
		{"java6", javaSSLv2Hello(tls.VersionTLS10, []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, 0x00ff}, 32), true},
		{"ssl2-only", javaSSLv2Hello(0x0002, []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, 32), false},
		{"bad-lengths", func() []byte { h := javaSSLv2Hello(tls.VersionTLS10, []uint16{0x2f}, 32); h[10] = 200; return h }(), false},
		{"short-challenge", javaSSLv2Hello(tls.VersionTLS10, []uint16{0x2f}, 4), false},
		{"no-shared-suite", javaSSLv2Hello(tls.VersionTLS10, []uint16{0x0004}, 16), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := p.mustConnect(t, "origin.test:443")
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(tc.hello)
			hdr := make([]byte, 6)
			_, err := io.ReadFull(c, hdr)
			served := err == nil && hdr[0] == 0x16 && hdr[5] == 0x02 // a ServerHello
			if served != tc.serve {
				t.Fatalf("answer %x (%v): served=%v, want %v", hdr, err, served, tc.serve)
			}
			if served && binary.BigEndian.Uint16(hdr[1:3]) != tls.VersionTLS10 {
				t.Fatalf("ServerHello record version %x, want TLS 1.0", hdr[1:3])
			}
		})
	}
	// Still serving.
	resp, _ := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://origin.test/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after SSLv2 hellos: status %d", resp.StatusCode)
	}
}

// An app that closes at once, or sends garbage records after its hello,
// never takes the engine down.
func TestLegacyEngineHostileRecords(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	for i := range 20 {
		c := p.mustConnect(t, "origin.test:443")
		tc := tls.Client(c, &tls.Config{ServerName: "origin.test", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
			RootCAs: poolOf(p.ca.Cert), SessionTicketsDisabled: true}) // no tickets: the legacy engine's app
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0: // a forged record: bad MAC
			c.Write([]byte{0x17, 0x03, 0x01, 0x00, 0x20})
			c.Write(make([]byte, 32))
		case 1: // an oversized record header
			c.Write([]byte{0x17, 0x03, 0x01, 0xff, 0xff})
			c.Write(make([]byte, 1000))
		case 2: // a plaintext handshake record after the handshake
			c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00})
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
	}
	resp, _ := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://origin.test/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after hostile records: status %d", resp.StatusCode)
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
