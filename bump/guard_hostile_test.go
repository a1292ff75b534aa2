package bump

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// Every port tlsbridge listens on — the proxy, the [admin] listener
// (RefuseOwnAddr) and each [[listener]] — is refused with 508 through the
// proxy, with a CONNECT or a plain GET, under every loopback spelling, even
// when connect_ports lists it (issue 13: the admin port was served).
func TestOwnListenersRefused(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, listenerConfig(o.addr, o.caFile, ""))

	var adminHits atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		adminHits.Add(1)
		NewAdminHandler(p.ca, p.srv.MetricsHandler(), nil).ServeHTTP(w, r)
	}))
	t.Cleanup(admin.Close)
	p.srv.RefuseOwnAddr(admin.Listener.Addr())
	lnAddr, _ := runListener(t, p, 0)

	ports := map[string]int{}
	for name, addr := range map[string]string{"proxy": p.addr, "admin": admin.Listener.Addr().String(), "listener": lnAddr} {
		_, port, _ := net.SplitHostPort(addr)
		ports[name], _ = strconv.Atoi(port)
	}
	// ServeListener records its port when its goroutine starts.
	deadline := time.Now().Add(5 * time.Second)
	for !p.srv.isSelf("127.0.0.1", ports["listener"]) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// connect_ports lists every one of them, so only the self-guard stands
	// between an app and the port.
	pol, err := policy.Parse(fmt.Appendf(nil, "connect_ports = [443, %d, %d, %d]\n", ports["proxy"], ports["admin"], ports["listener"]), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol)

	for _, name := range []string{"proxy", "admin", "listener"} {
		for _, host := range []string{"127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST.", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]"} {
			target := net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(ports[name]))
			for _, req := range []string{
				fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target),
				fmt.Sprintf("GET http://%s/debug/pprof/cmdline HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target),
			} {
				method, _, _ := strings.Cut(req, " ")
				t.Run(name+"/"+method+"/"+host, func(t *testing.T) {
					status, body := rawProxyRequest(t, p.addr, req)
					if status != http.StatusLoopDetected {
						t.Errorf("%s %s through the proxy: status %d, want 508; body %q", method, target, status, body)
					}
				})
			}
		}
	}
	if n := adminHits.Load(); n != 0 {
		t.Errorf("the admin handler served %d requests that came through the proxy, want 0", n)
	}
}

// rawProxyRequest sends one request to the proxy on a new connection and
// returns the status and up to 1 KiB of the body.
func rawProxyRequest(t testing.TB, proxy, request string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, request)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(body)
}
