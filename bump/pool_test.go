package bump

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// A legacy app that opens a new connection for each request reuses one
// upstream connection, whatever the framing of the answers (tlsbridge reads
// chunked bodies too).
func TestUpstreamReuse(t *testing.T) {
	oca := catest.New(t)
	var conns atomic.Int64
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part one "))
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "hello from origin")
	}))
	origin.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	origin.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{catest.ServerCert(t, oca, "origin.test")}}
	origin.StartTLS()
	defer origin.Close()
	caFile := oca.CertPath() // catest keeps the CA on disk
	p := startProxy(t, caFiles(caFile)+pinRule("origin.test", "bump", origin.Listener.Addr().String()))

	// get opens a new CONNECT + TLS 1.0 connection, sends one keep-alive
	// request (as curl, requests and Java do) and closes.
	get := func(path string) string {
		raw := p.mustConnect(t, "origin.test:443")
		defer raw.Close()
		c := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the test plays a legacy app
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: origin.test\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		return string(b)
	}
	// The relay hands the upstream back after the app's close; the next
	// app must not race it, as a real reconnecting app rarely does.
	waitPooled := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for p.srv.pool.size() < n {
			if time.Now().After(deadline) {
				t.Fatalf("pool holds %d idle upstream connections, want %d", p.srv.pool.size(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range 5 {
		if got := get("/"); got != "hello from origin" {
			t.Fatalf("request %d: body %q", i, got)
		}
		waitPooled(1)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 app connections opened %d upstream connections, want 1 (reused)", n)
	}
	if !strings.Contains(p.logs(), "upstream_reused=true") {
		t.Errorf("no access line says upstream_reused=true:\n%s", p.logs())
	}

	before := conns.Load()
	for range 3 {
		if got := get("/chunked"); got != "part one hello from origin" {
			t.Fatalf("chunked: body %q", got)
		}
		waitPooled(1)
	}
	if n := conns.Load() - before; n != 0 {
		t.Errorf("3 chunked exchanges opened %d new upstream connections, want 0 (reused)", n)
	}
}

// Idle pooled connections are closed after the idle time even when no other
// connection is put back (a burst's upstreams must not linger).
func TestPoolExpiresWithoutPut(t *testing.T) {
	p := &upstreamPool{idle: 40 * time.Millisecond}
	var servers []net.Conn
	for i := range 3 {
		c, s := net.Pipe()
		servers = append(servers, s)
		p.put(poolKey{addr: fmt.Sprint("up", i%2)}, tls.Client(c, &tls.Config{}))
	}
	if n := p.size(); n != 3 {
		t.Fatalf("pool holds %d, want 3", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pool still holds %d connections long after the idle time", p.size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, s := range servers {
		s.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection %d: the peer can still read, want it closed", i)
		}
	}
	p.mu.Lock()
	armed := p.sweep != nil
	p.mu.Unlock()
	if armed {
		t.Error("sweep timer still armed with an empty pool")
	}
}
