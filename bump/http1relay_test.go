package bump

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// recordingOrigin is an HTTPS origin (Go's net/http, which like nginx ends
// a header line at a bare LF) that records every request it parsed and
// counts the TLS connections it accepted.
type recordingOrigin struct {
	*origin
	mu    sync.Mutex
	seen  []string // "METHOD PATH body-sha256-prefix"
	conns atomic.Int64
}

func newRecordingOrigin(t testing.TB) *recordingOrigin {
	ro := &recordingOrigin{}
	// Counted at the ClientHello, set before the server starts: one per
	// TLS connection, with no write to the running server's config.
	ro.origin = startOrigin(t, false, http.HandlerFunc(ro.serve), func(c *tls.Config) {
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			ro.conns.Add(1)
			return nil, nil
		}
	})
	return ro
}

func (ro *recordingOrigin) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/early" {
		// An early answer (a limit or an auth failure) before the body is
		// read; net/http then closes without reading the rest.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	h := sha256.New()
	n, _ := io.Copy(h, r.Body)
	ro.mu.Lock()
	ro.seen = append(ro.seen, r.Method+" "+r.URL.Path)
	ro.mu.Unlock()
	switch r.URL.Path {
	case "/204":
		w.WriteHeader(http.StatusNoContent)
		return
	case "/etag":
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	case "/chunked":
		w.Write([]byte("part one "))
		w.(http.Flusher).Flush()
	case "/upload":
		fmt.Fprintf(w, "got %d bytes sha256=%s", n, hex.EncodeToString(h.Sum(nil)))
		return
	case "/ntlm":
		w.Header().Set("WWW-Authenticate", "NTLM")
		w.WriteHeader(http.StatusUnauthorized)
		return
	case "/ws":
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello-from-ws ")
		brw.Flush()
		io.Copy(c, brw) // echo
		return
	}
	fmt.Fprintf(w, "path:%s", r.URL.Path)
}

// requests returns what the origin parsed so far.
func (ro *recordingOrigin) requests() []string {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return append([]string(nil), ro.seen...)
}

func (ro *recordingOrigin) saw(path string) bool {
	for _, r := range ro.requests() {
		if strings.HasSuffix(r, " "+path) {
			return true
		}
	}
	return false
}

// app is a raw TLS 1.0 app connection through the proxy's CONNECT.
type app struct {
	t  testing.TB
	c  *tls.Conn
	br *bufio.Reader
}

func (p *proxy) dialApp(t testing.TB) *app {
	t.Helper()
	raw := p.mustConnect(t, "origin.test:443")
	c := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the test plays a legacy app
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &app{t: t, c: c, br: bufio.NewReader(c)}
}

func (a *app) send(s string) {
	a.t.Helper()
	if _, err := io.WriteString(a.c, s); err != nil {
		a.t.Fatalf("send: %v", err)
	}
}

// upgrade asks the recording origin's /ws for a WebSocket and returns the
// response to it, a 101 or the test ends.
func (a *app) upgrade() *http.Response {
	a.t.Helper()
	a.send("GET /ws HTTP/1.1\r\nHost: origin.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(a.br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 101 {
		a.t.Fatalf("upgrade: %v %v", resp, err)
	}
	return resp
}

// read reads one response to a request with method.
func (a *app) read(method string) (*http.Response, string) {
	a.t.Helper()
	resp, err := http.ReadResponse(a.br, &http.Request{Method: method})
	if err != nil {
		a.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the proxy ended the app connection (EOF or reset
// with nothing more to read).
func (a *app) closed() bool {
	a.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := a.br.ReadByte()
	return err != nil && !isTimeout(err)
}

func intermediaryProxy(t testing.TB, ro *recordingOrigin, extra string) *proxy {
	return startProxy(t, pinConfig(ro.origin, "origin.test", "bump", "")+extra)
}

// The issue 11 attack: a bare LF hides a Content-Length from a scanner that
// splits lines on CRLF only, while the origin (nginx, net/http) reads it,
// leaving the attacker's second request half-read on a pooled upstream
// connection, for the next app's request to complete. tlsbridge now answers
// the first request 400 and the origin never sees any of it.
func TestSmugglingThroughPool(t *testing.T) {
	const attack1 = "GET /index.html HTTP/1.1\r\nHost: origin.test\r\nFoo: a\nContent-Length: 40\r\n\r\n"
	const attack2 = "GET /t HTTP/1.1\r\nContent-Length: 37\r\nX: GET /index.html HTTP/1.1\r\nHost: origin.test\r\n\r\nGET /evil.html HTTP/1.1\r\nX-Ignore: "
	for _, tt := range []struct {
		name  string
		first string // the attacker's first request
		want  int    // its status
	}{
		{"bare-lf", attack1, http.StatusBadRequest},
		// The same second message after a well-formed first: a Content-Length
		// body that carries a request line is a body, never a request.
		{"well-formed-first", "GET /index.html HTTP/1.1\r\nHost: origin.test\r\n\r\n", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := newRecordingOrigin(t)
			p := intermediaryProxy(t, ro, "")
			a := p.dialApp(t)
			a.send(tt.first)
			resp, body := a.read("GET")
			if resp.StatusCode != tt.want {
				t.Fatalf("attacker's first request: %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == http.StatusBadRequest {
				if !strings.HasPrefix(body, "tlsbridge: 400") || !strings.Contains(body, "bare LF") {
					t.Errorf("400 body %q does not name the cause", body)
				}
				if !a.closed() {
					t.Error("the app connection stays open after a 400")
				}
			} else {
				io.WriteString(a.c, attack2)
				a.c.Close()
			}
			// Another app, maybe another user, now gets the pooled upstream.
			for i := range 3 {
				v := p.dialApp(t)
				v.send("GET /victim.html HTTP/1.1\r\nHost: origin.test\r\n\r\n")
				if _, body := v.read("GET"); body != "path:/victim.html" {
					t.Fatalf("victim %d got %q, want its own response", i, body)
				}
				v.c.Close()
			}
			if ro.saw("/evil.html") {
				t.Errorf("the origin parsed the smuggled request: %q", ro.requests())
			}
			if tt.want == http.StatusBadRequest && ro.saw("/index.html") {
				t.Errorf("the origin saw the rejected request: %q", ro.requests())
			}
		})
	}
}

// A server that answers before reading the body and closes: the app that
// is still sending gets the answer, then its connection ends (its body
// cannot be sent whole); an app that gives up mid-body is simply closed.
// Either way the relay ends and shutdown does not wait for it: a hang seen
// in CI, where a response raced past a body sender that had failed.
func TestEarlyAnswerThenClose(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	for i := range 10 {
		a := p.dialApp(t)
		a.send("POST /early HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("b", 64<<10))
		giveUp := i%2 == 1
		if giveUp {
			a.c.CloseWrite()
		}
		resp, err := http.ReadResponse(a.br, &http.Request{Method: http.MethodPost})
		switch {
		case err == nil && resp.StatusCode == http.StatusRequestEntityTooLarge:
		case err != nil && giveUp: // closed before the answer got through
		default:
			t.Fatalf("round %d: %v %v, want the 413", i, resp, err)
		}
		if err == nil && !a.closed() {
			t.Fatalf("round %d: the app connection stays open after a body that was cut", i)
		}
	}
	v := p.dialApp(t)
	v.send("GET /after HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if _, body := v.read("GET"); body != "path:/after" {
		t.Fatalf("next app got %q", body)
	}
}

// Ambiguous or malformed requests are answered by tlsbridge, never
// forwarded; the app connection and its upstream are closed, never pooled.
func TestAmbiguousFramingRefused(t *testing.T) {
	big := strings.Repeat("a", 70<<10)
	for _, tt := range []struct {
		name, req string
		status    int
	}{
		{"bare-lf", "GET /x1 HTTP/1.1\r\nHost: origin.test\r\nFoo: a\nContent-Length: 4\r\n\r\nabcd", 400},
		{"bare-cr", "GET /x2 HTTP/1.1\r\nHost: origin.test\r\nFoo: a\rContent-Length: 4\r\n\r\nabcd", 400},
		{"obs-fold", "GET /x3 HTTP/1.1\r\nHost: origin.test\r\nFoo: a\r\n Content-Length: 4\r\n\r\nabcd", 400},
		{"cl-and-te", "POST /x4 HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"cl-differ", "POST /x5 HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
		{"te-not-chunked-last", "POST /x6 HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"te-unknown", "POST /x7 HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"space-before-colon", "POST /x8 HTTP/1.1\r\nHost: origin.test\r\nContent-Length : 4\r\n\r\nabcd", 400},
		{"control-char", "GET /x9 HTTP/1.1\r\nHost: origin.test\r\nX: a\x01b\r\n\r\n", 400},
		{"head-too-large", "GET /x10 HTTP/1.1\r\nHost: origin.test\r\nX: " + big + "\r\n\r\n", 431},
		{"two-hosts", "GET /x11 HTTP/1.1\r\nHost: origin.test\r\nHost: evil.test\r\n\r\n", 400},
		{"connect-inside", "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", 405},
		{"connect-origin-form", "CONNECT /x12 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := newRecordingOrigin(t)
			p := intermediaryProxy(t, ro, "")
			a := p.dialApp(t)
			// A good request first, so an upstream is attached.
			a.send("GET /first HTTP/1.1\r\nHost: origin.test\r\n\r\n")
			if _, body := a.read("GET"); body != "path:/first" {
				t.Fatalf("first request: %q", body)
			}
			a.send(tt.req)
			resp, body := a.read("GET")
			if resp.StatusCode != tt.status || !strings.HasPrefix(body, "tlsbridge:") {
				t.Fatalf("status %d, body %q; want %d from tlsbridge", resp.StatusCode, body, tt.status)
			}
			if !a.closed() {
				t.Error("app connection still open")
			}
			if n := p.srv.pool.size(); n != 0 {
				t.Errorf("pool holds %d connections after a refused request, want 0 (closed)", n)
			}
			if got := ro.requests(); len(got) != 1 {
				t.Errorf("origin parsed %q, want only the first request", got)
			}
		})
	}
}

// A malformed chunked body is caught after its head went upstream: the
// upstream connection is closed, never pooled, and the origin sees no
// request made of the body's bytes.
func TestBadChunkClosesUpstream(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	a := p.dialApp(t)
	a.send("POST /upload HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /evil.html HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	resp, body := a.read("POST")
	if resp.StatusCode != 400 || !strings.Contains(body, "chunk size") {
		t.Errorf("malformed chunk: %d %q, want 400 naming the chunk size", resp.StatusCode, body)
	}
	if !a.closed() {
		t.Error("app connection still open after a malformed chunk")
	}
	time.Sleep(50 * time.Millisecond)
	if n := p.srv.pool.size(); n != 0 {
		t.Errorf("pool holds %d connections, want 0", n)
	}
	if ro.saw("/evil.html") {
		t.Errorf("origin parsed %q", ro.requests())
	}
}

// Apps that send Connection: close (urllib, PHP streams, Java without
// keep-alive) get their connection closed, while the upstream is pooled.
func TestConnectionCloseKeepsUpstream(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	const n = 200
	for i := range n {
		a := p.dialApp(t)
		a.send(fmt.Sprintf("GET /one-%d HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n", i))
		resp, body := a.read("GET")
		if want := fmt.Sprintf("path:/one-%d", i); body != want || resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
		if !resp.Close {
			t.Fatalf("request %d: response lacks Connection: close", i)
		}
		if !a.closed() {
			t.Fatalf("request %d: app connection not closed after Connection: close", i)
		}
		a.c.Close()
	}
	if c := ro.conns.Load(); c > 5 {
		t.Errorf("%d one-shot app connections cost %d upstream connections, want ≤ 5", n, c)
	}
	if !strings.Contains(p.logs(), "upstream_reused=true") {
		t.Error("no access line says upstream_reused=true")
	}
}

// Body-less responses, pipelining, chunked bodies both ways, Expect:
// 100-continue and per-request access lines, on one app connection.
func TestIntermediaryMessages(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	a := p.dialApp(t)

	a.send("HEAD /head HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, body := a.read("HEAD"); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	a.send("GET /204 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, _ := a.read("GET"); resp.StatusCode != 204 {
		t.Errorf("204: got %d", resp.StatusCode)
	}
	a.send("GET /etag HTTP/1.1\r\nHost: origin.test\r\nIf-None-Match: \"v1\"\r\n\r\n")
	if resp, _ := a.read("GET"); resp.StatusCode != 304 {
		t.Errorf("304: got %d", resp.StatusCode)
	}
	a.send("GET /p1 HTTP/1.1\r\nHost: origin.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: origin.test\r\n\r\nGET /p3 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	for i := 1; i <= 3; i++ {
		if _, body := a.read("GET"); body != fmt.Sprintf("path:/p%d", i) {
			t.Errorf("pipelined %d: %q", i, body)
		}
	}
	a.send("GET /chunked HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, body := a.read("GET"); body != "part one path:/chunked" || len(resp.TransferEncoding) == 0 {
		t.Errorf("chunked response: %q %v", body, resp.TransferEncoding)
	}
	// Expect: 100-continue: the body is sent only after the 100.
	a.send("POST /upload HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, _ := a.br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("Expect: 100-continue: first line %q, want a 100", line)
	}
	a.br.ReadString('\n')
	a.send("hello")
	sum := sha256.Sum256([]byte("hello"))
	if _, body := a.read("POST"); body != "got 5 bytes sha256="+hex.EncodeToString(sum[:]) {
		t.Errorf("after 100-continue: %q", body)
	}
	// An 8 MiB chunked upload, streamed.
	data := strings.Repeat("0123456789abcdef", 512<<10)
	go func() {
		w := bufio.NewWriter(a.c)
		w.WriteString("POST /upload HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i := 0; i < len(data); i += 100000 {
			chunk := data[i:min(i+100000, len(data))]
			fmt.Fprintf(w, "%x;ext=1\r\n%s\r\n", len(chunk), chunk)
		}
		w.WriteString("0\r\nX-Trailer: yes\r\n\r\n")
		w.Flush()
	}()
	sum = sha256.Sum256([]byte(data))
	if _, body := a.read("POST"); body != fmt.Sprintf("got %d bytes sha256=%s", len(data), hex.EncodeToString(sum[:])) {
		t.Errorf("chunked upload: %q", body)
	}
	a.c.Close()

	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(p.logs(), "msg=access") < 9 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logs := p.logs()
	for _, want := range []string{"method=HEAD path=/head", "path=/204 port=443", "status=304", "path=/p3", "path=/chunked"} {
		if !strings.Contains(p.logs(), want) {
			t.Errorf("no access line with %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(p.logs(), "msg=access"); n != 9 {
		t.Errorf("%d access lines for 9 requests:\n%s", n, p.logs())
	}
}

// An HTTP/1.0 app gets its answer close-delimited (never chunked) and its
// connection closed; the upstream request carries a Host.
func TestHTTP10App(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	for _, path := range []string{"/old", "/chunked"} {
		a := p.dialApp(t)
		a.send("GET " + path + " HTTP/1.0\r\n\r\n")
		raw, err := io.ReadAll(a.br)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		s := string(raw)
		if !strings.HasPrefix(s, "HTTP/1.1 200") || strings.Contains(strings.ToLower(s), "transfer-encoding") || !strings.HasSuffix(s, "path:"+path) {
			t.Errorf("HTTP/1.0 app got %q", s)
		}
	}
}

// WebSocket: after the 101 the connection is a byte relay both ways, and
// its upstream is never pooled.
func TestWebSocketUpgrade(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	a := p.dialApp(t)
	if resp := a.upgrade(); resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade: %v", resp)
	}
	a.send("ping-1 ")
	want := "hello-from-ws ping-1 "
	got := make([]byte, len(want))
	if _, err := io.ReadFull(a.br, got); err != nil || string(got) != want {
		t.Fatalf("after 101: %q, %v; want %q", got, err, want)
	}
	a.c.Close()
	time.Sleep(50 * time.Millisecond)
	if n := p.srv.pool.size(); n != 0 {
		t.Errorf("pool holds %d connections after a WebSocket, want 0", n)
	}
}

// NTLM and Negotiate authenticate the connection: its upstream stays with
// the app that authenticated and is never pooled for another.
func TestConnectionAuthNotPooled(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	a := p.dialApp(t)
	a.send("GET /ntlm HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, _ := a.read("GET"); resp.StatusCode != 401 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	a.send("GET /again HTTP/1.1\r\nHost: origin.test\r\nAuthorization: NTLM TlRMTVNTUAABAAAA\r\n\r\n")
	a.read("GET")
	a.c.Close()
	time.Sleep(50 * time.Millisecond)
	if n := p.srv.pool.size(); n != 0 {
		t.Errorf("pool holds %d connections after NTLM, want 0", n)
	}
	if c := ro.conns.Load(); c != 1 {
		t.Errorf("the app's two requests used %d upstream connections, want 1 (pinned)", c)
	}
}

// One proxy user's pooled upstream connections never carry another user's
// requests.
func TestPoolKeyedByUser(t *testing.T) {
	ro := newRecordingOrigin(t)
	users := filepath.Join(t.TempDir(), "users")
	var lines string
	for _, u := range []string{"alice", "bob"} {
		hash, err := bcrypt.GenerateFromPassword([]byte("pw-"+u), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines += u + ":" + string(hash) + "\n"
	}
	if err := os.WriteFile(users, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	p := intermediaryProxy(t, ro, fmt.Sprintf("\n[auth]\nusers_file = %q\n", users))
	oneShot := func(user string) {
		raw, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		req := &http.Request{Method: http.MethodConnect, Host: "origin.test:443", Header: http.Header{}}
		req.SetBasicAuth(user, "pw-"+user)
		fmt.Fprintf(raw, "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: %s\r\n\r\n", req.Header.Get("Authorization"))
		br := bufio.NewReader(raw)
		resp, err := http.ReadResponse(br, req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT as %s: %v %v", user, resp, err)
		}
		c := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the test plays a legacy app
		a := &app{t: t, c: c, br: bufio.NewReader(c)}
		a.send("GET /u HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		a.read("GET")
		a.closed()
		c.Close()
	}
	oneShot("alice")
	waitPool(t, p, 1)
	oneShot("bob") // must not take alice's connection
	waitPool(t, p, 2)
	oneShot("alice")
	oneShot("bob")
	if c := ro.conns.Load(); c != 2 {
		t.Errorf("two users, four one-shots: %d upstream connections, want 2 (one per user)", c)
	}
}

func waitPool(t testing.TB, p *proxy, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.srv.pool.size() != n {
		if time.Now().After(deadline) {
			t.Fatalf("pool holds %d idle upstream connections, want %d", p.srv.pool.size(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A pooled connection the server has closed meanwhile is replaced without
// the app noticing; an origin that goes away between two requests of one
// app connection gets that request a 502 with the cause.
func TestUpstreamGoneBetweenRequests(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "")
	a := p.dialApp(t)
	a.send("GET /a HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	a.read("GET")
	ro.srv.CloseClientConnections() // the origin's keep-alive timeout
	a.send("GET /b HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if _, body := a.read("GET"); body != "path:/b" {
		t.Fatalf("after the origin closed the kept connection: %q", body)
	}
	ro.srv.Close()
	a.send("GET /c HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	resp, body := a.read("GET")
	if resp.StatusCode != 502 || !strings.Contains(body, "could not connect") {
		t.Errorf("origin gone: %d %q, want 502 naming the cause", resp.StatusCode, body)
	}
}

// A kept upstream the server closes on receiving a request, before any
// answer: a request without a body is sent again on a new connection, but
// one whose body was already forwarded (and consumed from the app) must not
// be: sent again, its head would take its body from whatever the app sends
// next, a pipelined request's bytes or nothing at all (then the exchange
// hangs until the idle timeout).
func TestRetryNeverResendsConsumedBody(t *testing.T) {
	for _, tt := range []struct {
		name string
		next string // what the app sends after the PUT's body
	}{
		{"app-waits", ""},
		{"pipelined", "GET /next HTTP/1.1\r\nHost: origin.test\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var dropped atomic.Bool
			var mu sync.Mutex
			var puts []string
			o := startOrigin(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Method == http.MethodPut && dropped.CompareAndSwap(false, true) {
					// The server's keep-alive timeout, hit as the request came.
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						c.Close()
					}
					return
				}
				if r.Method == http.MethodPut {
					mu.Lock()
					puts = append(puts, string(b))
					mu.Unlock()
				}
				fmt.Fprintf(w, "%s %s body=%q", r.Method, r.URL.Path, b)
			}))
			p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
			a := p.dialApp(t)
			a.send("GET /first HTTP/1.1\r\nHost: origin.test\r\n\r\n")
			if _, body := a.read("GET"); body != `GET /first body=""` {
				t.Fatalf("first request: %q", body)
			}
			a.send("PUT /put HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\n\r\nhello" + tt.next)
			a.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(a.br, &http.Request{Method: http.MethodPut})
			if err != nil {
				t.Fatalf("PUT after the server closed the kept upstream: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			switch {
			case resp.StatusCode == http.StatusBadGateway:
			case resp.StatusCode == http.StatusOK && string(b) == `PUT /put body="hello"`:
			default:
				t.Errorf("PUT: %d %q, want a 502 or its own answer", resp.StatusCode, b)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, got := range puts {
				if got != "hello" {
					t.Errorf("the origin got a PUT whose body is %q, not the app's %q", got, "hello")
				}
			}
		})
	}
}

// After a 101 the connection is a byte relay with an idle watch of its own:
// traffic either way keeps it open past idle_timeout, however long ago the
// last HTTP message was (the intermediary's watch, which counts only
// HTTP-stage reads, must not close it from under the relay).
func TestUpgradedConnectionOutlivesIdleTimeout(t *testing.T) {
	ro := newRecordingOrigin(t)
	p := intermediaryProxy(t, ro, "\n[limits]\nidle_timeout = \"1s\"\n")
	a := p.dialApp(t)
	a.upgrade()
	hello := make([]byte, len("hello-from-ws "))
	if _, err := io.ReadFull(a.br, hello); err != nil {
		t.Fatalf("after 101: %v", err)
	}
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		msg := fmt.Sprintf("ping-%d ", i)
		a.send(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(a.br, got); err != nil || string(got) != msg {
			t.Fatalf("%v after the upgrade, with traffic every 250ms: %q, %v; want %q", time.Since(start).Round(time.Millisecond), got, err, msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
