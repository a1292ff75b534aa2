package bump

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// frontAuthProxy runs a proxy with [auth] (alice / s3cret), a bump rule for
// origin.test and connect_ports 443 plus extraPort (for a plain-HTTP
// backend), and returns it with the Proxy-Authorization value for alice.
func frontAuthProxy(t *testing.T, extraPort string, tweak ...func(*Config)) (p *proxy, cred string) {
	t.Helper()
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := "connect_ports = [443]\n"
	if extraPort != "" {
		ports = fmt.Sprintf("connect_ports = [443, %s]\n", extraPort)
	}
	p = startProxy(t, ports+pinConfig(o, "origin.test", "bump", "")+fmt.Sprintf("\n[auth]\nusers_file = %q\n", users), tweak...)
	return p, "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
}

// keepAliveConn is one client connection to the proxy on which requests
// are written raw and responses read in turn.
type keepAliveConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialProxy(t *testing.T, addr string) *keepAliveConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &keepAliveConn{t: t, c: c, br: bufio.NewReader(c)}
}

// do writes one raw request and reads the response to it, body included.
func (k *keepAliveConn) do(request string) (*http.Response, string) {
	k.t.Helper()
	if _, err := io.WriteString(k.c, request); err != nil {
		k.t.Fatalf("writing %q: %v", firstLine([]byte(request)), err)
	}
	method := http.MethodGet
	if strings.HasPrefix(request, "CONNECT ") {
		method = http.MethodConnect
	}
	resp, err := http.ReadResponse(k.br, &http.Request{Method: method})
	if err != nil {
		k.t.Fatalf("response to %q: %v", firstLine([]byte(request)), err)
	}
	if resp.StatusCode == http.StatusOK && method == http.MethodConnect {
		return resp, "" // the tunnel follows
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		k.t.Fatalf("body of the response to %q: %v", firstLine([]byte(request)), err)
	}
	return resp, string(body)
}

// want407 sends a CONNECT without credentials and checks that the proxy
// asks for them and keeps the connection.
func (k *keepAliveConn) want407() {
	k.t.Helper()
	resp, body := k.do("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n")
	if resp.StatusCode != http.StatusProxyAuthRequired || resp.Close {
		k.t.Fatalf("CONNECT without credentials = %d (close %v) %q, want 407 keeping the connection", resp.StatusCode, resp.Close, body)
	}
}

// wantClosed checks that the proxy closed the connection (within 5 s).
func (k *keepAliveConn) wantClosed(what string) {
	k.t.Helper()
	k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := k.br.Read(make([]byte, 1)); err != io.EOF {
		k.t.Errorf("%s: read %d bytes, %v; want the connection closed (EOF)", what, n, err)
	}
}

// bumpedGet speaks TLS through an established tunnel to origin.test,
// trusting only the proxy's CA, and GETs /front.
func bumpedGet(t *testing.T, p *proxy, c net.Conn) string {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	tc := tls.Client(c, &tls.Config{ServerName: "origin.test", RootCAs: roots, MinVersion: tls.VersionTLS12})
	if _, err := io.WriteString(tc, "GET /front HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("bumped request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("bumped response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bumped GET = %d %q, want 200", resp.StatusCode, body)
	}
	return string(body)
}

// An app that sends its credentials after a 407 on the same connection (as
// curl and browsers do) gets its tunnel, read by the front door, and the
// tunnel is bumped; also on the proxy port spoken to in TLS.
func TestConnectRetryAfter407(t *testing.T) {
	p, cred := frontAuthProxy(t, "")
	for _, proxyTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain-proxy-port", true: "tls-proxy-port"}[proxyTLS], func(t *testing.T) {
			k := dialProxy(t, p.addr)
			if proxyTLS {
				roots := x509.NewCertPool()
				roots.AddCert(p.ca.Cert)
				tc := tls.Client(k.c, &tls.Config{ServerName: "127.0.0.1", RootCAs: roots, MinVersion: tls.VersionTLS12})
				if err := tc.Handshake(); err != nil {
					t.Fatalf("TLS to the proxy port: %v", err)
				}
				k.c, k.br = tc, bufio.NewReader(tc)
			}
			k.want407()
			resp, body := k.do("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: " + cred + "\r\n\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("CONNECT with credentials after a 407 = %d %q, want 200", resp.StatusCode, body)
			}
			if k.br.Buffered() > 0 {
				t.Fatalf("%d bytes after the 200", k.br.Buffered())
			}
			if got := bumpedGet(t, p, k.c); !strings.Contains(got, "hello from origin; host=origin.test path=/front") {
				t.Errorf("bumped GET body = %q, want the origin's answer", got)
			}
		})
	}
}

// A CONNECT retried after a 407 is read by internal/http1, like the first:
// a head net/http would take (bare LF line ends, Content-Length with
// Transfer-Encoding, an obs-fold line) is refused with 400 and the
// connection closed; so is one sent after the handshake timeout (a person
// typing the password), which waits as a keep-alive connection does.
func TestConnectRetryAfter407IsStrict(t *testing.T) {
	p, cred := frontAuthProxy(t, "", func(c *Config) { c.Policy.Limits.HandshakeTimeout = 300 * time.Millisecond })
	auth := "Proxy-Authorization: " + cred
	for _, tt := range []struct {
		name  string
		head  string
		pause time.Duration // between the 407 and the retry
		want  int
	}{
		{"crlf", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n" + auth + "\r\n\r\n", 0, http.StatusOK},
		{"bare-lf", "CONNECT origin.test:443 HTTP/1.1\nHost: origin.test:443\n" + auth + "\n\n", 0, http.StatusBadRequest},
		{"bare-lf-ending-head", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n" + auth + "\r\n\n", 0, http.StatusBadRequest},
		{"content-length-and-transfer-encoding", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n" + auth +
			"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, http.StatusBadRequest},
		{"obs-fold", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n" + auth + "\r\nX-Folded: a\r\n b\r\n\r\n", 0, http.StatusBadRequest},
		{"after-handshake-timeout/crlf", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n" + auth + "\r\n\r\n", time.Second, http.StatusOK},
		{"after-handshake-timeout/bare-lf", "CONNECT origin.test:443 HTTP/1.1\nHost: origin.test:443\n" + auth + "\n\n", time.Second, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := dialProxy(t, p.addr)
			k.want407()
			time.Sleep(tt.pause)
			resp, body := k.do(tt.head)
			if resp.StatusCode != tt.want {
				t.Fatalf("retry = %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == http.StatusBadRequest {
				if !strings.Contains(body, "malformed CONNECT request") {
					t.Errorf("400 body = %q, want the front door's (internal/http1's) answer", body)
				}
				k.wantClosed("after the 400")
			}
		})
	}
}

// A 407 to a CONNECT that announced a body, or asked to close, ends the
// connection: the bytes after the head are no request to guess at.
func TestConnect407ClosesAfterBodyOrClose(t *testing.T) {
	p, cred := frontAuthProxy(t, "")
	smuggled := "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: " + cred + "\r\n\r\n"
	for _, tt := range []struct{ name, head string }{
		{"content-length", fmt.Sprintf("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled)},
		{"chunked", fmt.Sprintf("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)},
		{"connection-close", "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nConnection: close\r\n\r\n"},
		{"http10", "CONNECT origin.test:443 HTTP/1.0\r\nHost: origin.test:443\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := dialProxy(t, p.addr)
			resp, body := k.do(tt.head)
			if resp.StatusCode != http.StatusProxyAuthRequired || !resp.Close {
				t.Fatalf("CONNECT = %d (close %v) %q, want 407 closing the connection", resp.StatusCode, resp.Close, body)
			}
			k.wantClosed("after the 407")
		})
	}
}

// After a 407, a plain-HTTP proxy request on the same connection goes to
// http.Server (goproxy's forwarding) as before: asked for credentials
// without them, forwarded with them, and the connection kept between.
func TestPlainRequestAfterConnect407(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			http.Error(w, "credentials reached the origin", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "plain ok")
	}))
	defer backend.Close()
	host := backend.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(host)
	p, cred := frontAuthProxy(t, port)

	k := dialProxy(t, p.addr)
	k.want407()
	get := fmt.Sprintf("GET http://%s/x HTTP/1.1\r\nHost: %s\r\n", host, host)
	resp, body := k.do(get + "\r\n")
	if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") == "" || resp.Close {
		t.Fatalf("GET without credentials after a 407 = %d (close %v) %q, want 407 with a challenge, keeping the connection", resp.StatusCode, resp.Close, body)
	}
	resp, body = k.do(get + "Proxy-Authorization: " + cred + "\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "plain ok" {
		t.Fatalf("GET with credentials = %d %q, want 200 \"plain ok\"", resp.StatusCode, body)
	}
	// A CONNECT after a plain request is taken over from http.Server into
	// the pipeline (front), as before.
	resp, body = k.do("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: " + cred + "\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT after the plain request = %d %q, want 200", resp.StatusCode, body)
	}
	if got := bumpedGet(t, p, &peekedConn{Conn: k.c, r: k.br}); !strings.Contains(got, "hello from origin") {
		t.Errorf("bumped GET body = %q, want the origin's answer", got)
	}
}

// A connection waiting for the retry after a 407 is not tracked yet; a
// shutdown still closes it at once rather than after idle_timeout.
func TestShutdownClosesConnectionAwaitingRetry(t *testing.T) {
	p, _ := frontAuthProxy(t, "")
	k := dialProxy(t, p.addr)
	k.want407()
	start := time.Now()
	p.srv.Close()
	k.wantClosed("after Close")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the connection was closed %v after Close, want at once", d)
	}
}
