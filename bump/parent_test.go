package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/freeport"
	"github.com/tlsbridge/tlsbridge/policy"
)

// fakeParent is an in-process parent (corporate) proxy: CONNECT and
// absolute-form GET, with names that only it resolves (hosts), optional
// Basic credentials, and hostile modes.
type fakeParent struct {
	addr     string
	hosts    map[string]string // "origin.internal:443" → the real address
	user     string            // "alice:pw" required when set
	mode     string            // "", "garbage", "huge", "ok-then-close", "forbidden", "silent", "bad-gateway"
	connects atomic.Int64
	gets     atomic.Int64
	mu       sync.Mutex
	auths    []string // Proxy-Authorization values seen
}

func newFakeParent(t testing.TB, hosts map[string]string, user, mode string) *fakeParent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakeParent{addr: ln.Addr().String(), hosts: hosts, user: user, mode: mode}
	var wg sync.WaitGroup
	var conns sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conns.Delete(c)
				fp.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return fp
}

func (fp *fakeParent) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	fp.mu.Lock()
	fp.auths = append(fp.auths, req.Header.Get("Proxy-Authorization"))
	fp.mu.Unlock()
	switch fp.mode {
	case "garbage":
		io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
		return
	case "huge":
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Pad: "+strings.Repeat("a", 1<<20)+"\r\n\r\n")
		return
	case "ok-then-close":
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		return
	case "forbidden":
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	case "bad-gateway":
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	case "silent":
		io.Copy(io.Discard, c)
		return
	}
	if fp.user != "" && req.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(fp.user)) {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	target := req.Host
	if req.Method != http.MethodConnect {
		fp.gets.Add(1)
		target = req.URL.Host
		if !strings.Contains(target, ":") {
			target += ":80"
		}
	} else {
		fp.connects.Add(1)
	}
	real, ok := fp.hosts[target]
	if !ok {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", real)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	if req.Method == http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	} else {
		req.Header.Del("Proxy-Authorization")
		req.Write(up)
	}
	go func() {
		io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(c, up)
}

// writeSecret writes data to dir/name with mode 0600 and returns the path.
func writeSecret(t testing.TB, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The origin is reachable only through the parent: the rule dials
// origin.internal, a name only the parent resolves. Bumped and tunnelled
// CONNECTs, plain http:// forwarding and check all go through it, with
// the credentials of proxy_auth_file.
func TestParentProxy(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "plain origin; host=%s", r.Host)
	}))
	t.Cleanup(plain.Close)
	fp := newFakeParent(t, map[string]string{"origin.internal:443": o.addr, "plain.internal:80": plain.Listener.Addr().String()}, "alice:s3cret", "")
	auth := writeSecret(t, t.TempDir(), "proxy-auth", "alice:s3cret\n")
	cfg := fmt.Sprintf(`
[upstream]
ca_files = [%q]
proxy = "http://%s"
proxy_auth_file = %q

[[rule]]
hosts = ["bumped.test"]
action = "bump"
[rule.upstream]
address = "origin.internal:443"
server_name = "origin.test"

[[rule]]
hosts = ["tunnelled.test"]
action = "tunnel"
[rule.upstream]
address = "origin.internal:443"
`, o.caFile, fp.addr, auth)
	p := startProxy(t, cfg)

	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	resp, body := get(t, client, "https://bumped.test/x")
	if resp.StatusCode != 200 || !strings.Contains(body, "hello from origin") {
		t.Fatalf("bumped through the parent: %d %q", resp.StatusCode, body)
	}
	if n := fp.connects.Load(); n != 1 {
		t.Errorf("parent saw %d CONNECTs, want 1", n)
	}

	// A tunnel: the app's own TLS 1.2 (verified against the origin's CA)
	// through tlsbridge and the parent.
	raw := p.mustConnect(t, "tunnelled.test:443")
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: o.ca.Pool(), MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("tunnel through the parent: %v", err)
	}
	tc.Close()
	if n := fp.connects.Load(); n != 2 {
		t.Errorf("parent saw %d CONNECTs, want 2", n)
	}

	// Plain http:// forwarding: absolute-form to the parent, with the
	// credentials.
	pc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+p.addr))}, Timeout: 10 * time.Second}
	resp, body = get(t, pc, "http://plain.internal/")
	if resp.StatusCode != 200 || !strings.Contains(body, "plain origin") || fp.gets.Load() != 1 {
		t.Errorf("plain http through the parent: %d %q (parent GETs %d)", resp.StatusCode, body, fp.gets.Load())
	}

	// check goes the same way.
	r := Check(context.Background(), p.srv.Policy(), "bumped.test", 443, nil)
	var b strings.Builder
	r.WriteTo(&b)
	if !r.LegacyOK() || !strings.Contains(b.String(), "parent      through http://"+fp.addr+" (HTTP CONNECT), with the credentials of "+auth) {
		t.Errorf("check through the parent (err %v):\n%s", r.Err, b.String())
	}
	if strings.Contains(b.String()+p.logs(), "s3cret") || strings.Contains(b.String()+p.logs(), base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))) {
		t.Error("the parent's password appears in the report or the logs")
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Every way a parent can fail is a 502 or 504 inside the app's TLS that
// names the parent and the fix, classified as parent_proxy, and check
// reports the same; a hostile parent (garbage, a 1 MiB head, 200 then
// close, silence) costs a bounded read and a bounded wait.
func TestParentProxyFailures(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	hosts := map[string]string{"origin.internal:443": o.addr}
	dir := t.TempDir()
	goodAuth := writeSecret(t, dir, "good", "alice:s3cret\n")
	badAuth := writeSecret(t, dir, "bad", "alice:wrong\n")
	for _, tt := range []struct {
		name, mode, user, auth string
		status                 int
		want                   []string
	}{
		{"407-no-credentials", "", "alice:s3cret", "", 502, []string{"refused the CONNECT", "407", "set `proxy_auth_file = \"proxy-auth.txt\"` in [upstream]"}},
		{"407-wrong-credentials", "", "alice:s3cret", badAuth, 502, []string{"407", "does not accept the credentials in " + badAuth}},
		{"403", "forbidden", "", "", 502, []string{"403", "access rules", `proxy = "direct"`}},
		{"502", "bad-gateway", "", "", 502, []string{"could not connect to origin.internal:443", "502"}},
		{"garbage", "garbage", "", "", 502, []string{"did not answer the CONNECT", "HTTP proxy port"}},
		{"huge-head", "huge", "", "", 502, []string{"did not answer the CONNECT", "larger than 16384 bytes"}},
		{"200-then-close", "ok-then-close", "", goodAuth, 502, []string{"closed during the TLS handshake", "parent proxy"}},
		{"silent", "silent", "", "", 504, []string{"did not open a tunnel", "in time"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fp := newFakeParent(t, hosts, tt.user, tt.mode)
			authLine := ""
			if tt.auth != "" {
				authLine = fmt.Sprintf("proxy_auth_file = %q\n", tt.auth)
			}
			cfg := fmt.Sprintf("[upstream]\nca_files = [%q]\nproxy = \"http://%s\"\n%s[limits]\nupstream_timeout = \"1s\"\n", o.caFile, fp.addr, authLine) +
				pinRule("bumped.test", "bump", "origin.internal:443", originName)
			p := startProxy(t, cfg)
			client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
			start := time.Now()
			resp, body := get(t, client, "https://bumped.test/")
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("answered after %v", d)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			for _, w := range append(tt.want, "http://"+fp.addr) {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			if strings.Contains(body, "s3cret") || strings.Contains(body, "wrong") && !strings.Contains(tt.name, "wrong") {
				t.Errorf("body carries a password:\n%s", body)
			}
			r := Check(context.Background(), p.srv.Policy(), "bumped.test", 443, nil)
			var b strings.Builder
			r.WriteTo(&b)
			if r.LegacyOK() || !strings.Contains(b.String(), tt.want[0]) {
				t.Errorf("check (ok %v):\n%s", r.LegacyOK(), b.String())
			}
		})
	}
	// The reason label.
	ue := &upstreamError{stage: "dial", err: &parentError{proxy: &policy.ParentProxy{URL: "http://p:1", Section: "default"}, status: 407}}
	if v := ue.verdict(); v.reason != reasonParentProxy || v.status != 502 {
		t.Errorf("407 verdict = %+v", v)
	}
}

// A parent that is tlsbridge itself is refused with 508, not looped
// through.
func TestParentProxyIsSelf(t *testing.T) {
	self := freeport.Addr(t)
	// The proxy will listen where its parent points: itself.
	p := startProxyAt(t, self, fmt.Sprintf("[upstream]\nproxy = \"http://%s\"\n", self)+pinRule("loop.test", "bump", ""))
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	resp, body := get(t, client, "https://loop.test/")
	if resp.StatusCode != http.StatusLoopDetected || !strings.Contains(body, "tlsbridge's own listener") || !strings.Contains(body, "fix `proxy = ") {
		t.Errorf("parent = self: %d %s", resp.StatusCode, body)
	}
}

// A [[listener]] reaches its upstream through the parent too, and
// presents its client certificate there.
func TestListenerThroughParentWithClientCert(t *testing.T) {
	dir := t.TempDir()
	apiCA := newClientCA(t, "api client CA")
	certFile, keyFile := apiCA.issue(t, dir, "client", "listener-app")
	o := newMTLSOrigin(t, apiCA, tls.VersionTLS13)
	fp := newFakeParent(t, map[string]string{"origin.internal:443": o.addr}, "", "")
	p := startProxy(t, fmt.Sprintf("[upstream]\nproxy = \"http://%s\"\n", fp.addr)+
		listenerConfig("origin.internal:443", o.caFile, "client_tls = false")+
		fmt.Sprintf("client_cert = %q\nclient_key = %q\n", certFile, keyFile))
	addr, _ := runListener(t, p, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), "client=listener-app") || fp.connects.Load() != 1 {
		t.Errorf("listener through the parent (CONNECTs %d): %q", fp.connects.Load(), b)
	}
}
