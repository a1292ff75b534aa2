package bump

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestProxyAuthentication(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, pinConfig(o, "origin.test", "bump", "")+fmt.Sprintf("\n[auth]\nusers_file = %q\n", users))

	for _, tt := range []struct {
		name     string
		user     *url.Userinfo
		wantCode int
	}{
		{"no-credentials", nil, http.StatusProxyAuthRequired},
		{"wrong-password", url.UserPassword("alice", "guess"), http.StatusProxyAuthRequired},
		{"unknown-user", url.UserPassword("mallory", "s3cret"), http.StatusProxyAuthRequired},
		{"right-password", url.UserPassword("alice", "s3cret"), http.StatusOK},
		{"right-password-cached", url.UserPassword("alice", "s3cret"), http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Host: "origin.test:443"}, Host: "origin.test:443", Header: http.Header{}}
			if tt.user != nil {
				pass, _ := tt.user.Password()
				req.SetBasicAuth(tt.user.Username(), pass)
				req.Header["Proxy-Authorization"] = req.Header["Authorization"]
				delete(req.Header, "Authorization")
			}
			req.Write(c)
			resp, err := http.ReadResponse(bufio.NewReader(c), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("CONNECT status = %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantCode == http.StatusProxyAuthRequired && !strings.HasPrefix(resp.Header.Get("Proxy-Authenticate"), `Basic realm="tlsbridge"`) {
				t.Errorf("Proxy-Authenticate = %q, want a Basic challenge", resp.Header.Get("Proxy-Authenticate"))
			}
		})
	}

	// A real client with credentials in the proxy URL gets through.
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	client.Transport.(*http.Transport).Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr, User: url.UserPassword("alice", "s3cret")})
	if resp, body := get(t, client, "https://origin.test/"); resp.StatusCode != 200 {
		t.Errorf("with credentials: status %d, body %q", resp.StatusCode, body)
	}
}

func TestLoopRefused(t *testing.T) {
	p := startProxy(t, "")
	_, port, _ := net.SplitHostPort(p.addr)
	for _, target := range []string{p.addr, "localhost:" + port, "[::1]:" + port} {
		_, err := p.connect(target)
		var ce *connectError
		if !errors.As(err, &ce) || ce.status != http.StatusLoopDetected {
			t.Errorf("CONNECT %s: err = %v, want 508 Loop Detected", target, err)
		}
	}
	// A rule that pins a name to the proxy's own address is caught at dial.
	p2 := startProxy(t, fmt.Sprintf("[[rule]]\nhosts = [\"loop.test\"]\naction = \"tunnel\"\n[rule.upstream]\naddress = %q\n", p.addr))
	p2.srv.addSelf(mustResolve(t, p.addr)) // as if p were p2's own listener
	_, err := p2.connect("loop.test:443")
	var ce *connectError
	if !errors.As(err, &ce) || ce.status != http.StatusLoopDetected {
		t.Errorf("CONNECT to a name pinned to the proxy: err = %v, want 508", err)
	}
}

func mustResolve(t *testing.T, addr string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMaxConnections(t *testing.T) {
	p := startProxy(t, "", func(c *Config) { c.Policy.Limits.MaxConnections = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond) // let the proxy admit them
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(reply), "HTTP/1.1 503") || !strings.Contains(string(reply), "limits.max_connections = 2") {
		t.Errorf("third connection got %q, want 503 naming limits.max_connections", reply)
	}
	// Closing one frees a slot.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.Contains(line, "503") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed after closing a connection: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSSLv2HelloOnProxyPort(t *testing.T) {
	p := startProxy(t, "")
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	io.Copy(io.Discard, c)
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed after %v, want at once", d)
	}
	if !strings.Contains(p.logs(), "SSLv2") {
		t.Errorf("no SSLv2 hint in the log:\n%s", p.logs())
	}
}
