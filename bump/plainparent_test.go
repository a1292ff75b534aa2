package bump

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// plainGet sends "GET rawURL" in absolute form to the proxy port (no
// CONNECT) and returns the status and body.
func plainGet(t testing.TB, proxyAddr, rawURL string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	host := strings.SplitN(strings.SplitN(rawURL, "://", 2)[1], "/", 2)[0]
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", rawURL, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An https:// absolute URI sent to the proxy port without CONNECT takes
// the dial stage's path like a CONNECT: through the parent's CONNECT
// tunnel (with its credentials), presenting client_cert, completing an
// incomplete chain from the AIA URL (fetched through the parent in
// absolute form), and a failure is classified by the same verdicts
// (client_cert, parent proxy).
func TestPlainHTTPSThroughParent(t *testing.T) {
	dir := t.TempDir()
	apiCA := newClientCA(t, "api client CA")
	certFile, keyFile := apiCA.issue(t, dir, "client", "plain-app")
	mtls := newMTLSOrigin(t, apiCA, 0)
	pki := newChainPKI(t, "plain")
	aia := newAIAServer(t, pki, nil)
	leafOnly := leafOnlyOrigin(t, pki.leaf(t, "http://aia.internal/inter.der"))
	fp := newFakeParent(t, map[string]string{
		"mtls.internal:443":     mtls.addr,
		"leafonly.internal:443": leafOnly,
		"aia.internal:80":       aia.srv.Listener.Addr().String(),
	}, "alice:s3cret", "")
	auth := writeSecret(t, dir, "proxy-auth", "alice:s3cret\n")
	cfg := fmt.Sprintf("[upstream]\nca_files = [%q, %q]\nproxy = \"http://%s\"\nproxy_auth_file = %q\n", mtls.caFile, pki.rootFile, fp.addr, auth) +
		pinRule("mtls.test", "bump", "mtls.internal:443", originName, fmt.Sprintf("client_cert = %q\nclient_key = %q", certFile, keyFile)) +
		pinRule("nocert.test", "bump", "mtls.internal:443", originName) +
		pinRule("leafonly.test", "bump", "leafonly.internal:443", originName, "fetch_intermediates = true") +
		pinRule("nowhere.test", "bump", "nowhere.internal:443", originName)
	p := startProxy(t, cfg)

	for _, tt := range []struct {
		url    string
		status int
		want   string
	}{
		{"https://mtls.test/", 200, "client=plain-app"},
		{"https://leafonly.test/", 200, "hello from the leaf-only origin"},
		{"https://leafonly.test/again", 200, "hello from the leaf-only origin"},
		{"https://nocert.test/", 502, "set `client_cert = \"client.pem\"` in [rule.upstream] of rule[1]"},
		{"https://nowhere.test/", 502, "The parent proxy http://" + fp.addr + " could not connect to nowhere.internal:443"},
	} {
		status, body := plainGet(t, p.addr, tt.url)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %q, want %d with %q", tt.url, status, body, tt.status, tt.want)
		}
	}
	// Every https:// request was a CONNECT tunnel through the parent (the
	// app's Connection: close ends each upstream connection too); the
	// one AIA fetch a GET there in absolute form, the second leafonly
	// request completed its chain from the cache.
	if c, g := fp.connects.Load(), fp.gets.Load(); c != 5 || g != 1 {
		t.Errorf("parent saw %d CONNECTs and %d GETs, want 5 (one per request, nowhere refused) and 1 (one AIA fetch)", c, g)
	}
	if n := aia.hits.Load(); n != 1 {
		t.Errorf("AIA server hit %d times, want 1", n)
	}
	fp.mu.Lock()
	for _, a := range fp.auths {
		if a == "" {
			t.Errorf("a request reached the parent without credentials: %q", fp.auths)
			break
		}
	}
	fp.mu.Unlock()
	ms := httptest.NewServer(p.srv.MetricsHandler())
	defer ms.Close()
	if n := scrape(t, ms.URL)[`tlsbridge_aia_fetches_total{result="fetched"}`]; n != 1 {
		t.Errorf("aia fetched %v, want 1", n)
	}
}
