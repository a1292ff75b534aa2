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

// trackerCase is an exchange and whether the upstream may be kept after it.
var trackerCases = []struct {
	name     string
	req      string
	resp     string
	wantKeep bool
}{
	{"get-content-length", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true},
	{"two-in-a-row", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", true},
	{"post-with-body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", true},
	{"head", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true},
	{"not-modified", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", true},
	{"chunked", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false},
	{"close-delimited", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nhello", false},
	{"connection-close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"server-close", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n", false},
	{"http10", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"interim-100", "POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nx", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"body-unfinished", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", false},
	{"no-answer", "GET / HTTP/1.1\r\n\r\n", "", false},
	{"pipelined", "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"conflicting-lengths", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false},
	{"upgrade", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n\r\n", false},
	{"unanswered-response", "", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"ntlm-request", "GET / HTTP/1.1\r\nAuthorization: NTLM TlRMTVNTUAABAAAA\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"negotiate-challenge", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n", false},
	{"basic-auth-is-per-request", "GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
}

// The trackers reach the same verdict however the bytes are split into
// reads, down to one byte at a time.
func TestReuseTracker(t *testing.T) {
	for _, tt := range trackerCases {
		for _, chunk := range []int{1, 2, 3, 7, 1 << 20} {
			t.Run(fmt.Sprintf("%s/chunk-%d", tt.name, chunk), func(t *testing.T) {
				r := newReuser()
				feedChunks(r.feedApp, tt.req, chunk)
				feedChunks(r.feedUpstream, tt.resp, chunk)
				if got := r.keep() && r.kept(); got != tt.wantKeep {
					t.Errorf("keep after %q / %q = %v, want %v", tt.req, tt.resp, got, tt.wantKeep)
				}
			})
		}
	}
}

func feedChunks(feed func([]byte), s string, n int) {
	for len(s) > 0 {
		k := min(n, len(s))
		feed([]byte(s[:k]))
		s = s[k:]
	}
}

// Bytes from the upstream after the decision make the connection unusable.
func TestReuseDirtyAfterKeep(t *testing.T) {
	r := newReuser()
	r.feedApp([]byte("GET / HTTP/1.1\r\n\r\n"))
	r.feedUpstream([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	if !r.keep() {
		t.Fatal("keep() = false on a boundary")
	}
	r.feedUpstream([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n"))
	if r.kept() {
		t.Error("kept() = true after unsolicited upstream bytes")
	}
}

func FuzzReuseTracker(f *testing.F) {
	for _, tt := range trackerCases {
		f.Add(tt.req, tt.resp, 3)
	}
	f.Fuzz(func(t *testing.T, req, resp string, chunk int) {
		if chunk < 1 {
			chunk = 1
		}
		whole := newReuser()
		feedChunks(whole.feedApp, req, len(req)+1)
		feedChunks(whole.feedUpstream, resp, len(resp)+1)
		split := newReuser()
		feedChunks(split.feedApp, req, chunk)
		feedChunks(split.feedUpstream, resp, chunk)
		if a, b := whole.keep(), split.keep(); a != b {
			t.Fatalf("verdict depends on read sizes: whole %v, chunks of %d %v (%q / %q)", a, chunk, b, req, resp)
		}
	})
}

// A legacy app that opens a new connection for each request reuses one
// upstream connection; chunked answers are never reused.
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
		raw, err := p.connect("origin.test:443")
		if err != nil {
			t.Fatal(err)
		}
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

	before, pooled := conns.Load(), p.srv.pool.size()
	for range 3 {
		if got := get("/chunked"); got != "part one hello from origin" {
			t.Fatalf("chunked: body %q", got)
		}
	}
	time.Sleep(100 * time.Millisecond) // a wrongly kept connection would be back by now
	// Pooled connections may carry the first chunked exchanges; none goes
	// back afterwards, so the rest need new ones.
	if n := conns.Load() - before; n < int64(3-pooled) {
		t.Errorf("3 chunked exchanges with %d pooled connections opened %d new upstream connections, want at least %d", pooled, n, 3-pooled)
	}
	if n := p.srv.pool.size(); n != 0 {
		t.Errorf("after chunked exchanges the pool holds %d connections, want 0", n)
	}
}

// BenchmarkReuseTracker is the per-request cost the framing trackers add to
// a keep-alive bumped connection: one request head, one response with a
// 1 KiB body arriving in the same read as its head.
func BenchmarkReuseTracker(b *testing.B) {
	req := []byte("GET /index.html HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: legacy\r\nAccept: */*\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 1024\r\nConnection: keep-alive\r\n\r\n" + strings.Repeat("x", 1024))
	r := newReuser()
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	for b.Loop() {
		r.feedApp(req)
		r.feedUpstream(resp)
	}
	if !r.keep() {
		b.Fatal("not at a boundary")
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
