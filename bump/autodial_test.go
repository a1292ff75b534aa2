package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// countingListener accepts and closes connections, counting them: an
// upstream that must never be dialled.
func countingListener(t testing.TB) (addr string, dials *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	dials = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), dials
}

// Issue 13 item 6: under auto, an upstream that cannot be reached is
// answered on the CONNECT (502, or 504 on a timeout) with the reason, for
// the app that would have been tunnelled and for the legacy one alike, and
// the access line says what the app got.
func TestAutoUpstreamDownAnswersConnect(t *testing.T) {
	down := closedAddr(t)
	p := startProxy(t, pinRule("down.test", "auto", down))
	_, err := p.connect("down.test:443")
	var ce *connectError
	if !errors.As(err, &ce) || ce.status != http.StatusBadGateway {
		t.Fatalf("CONNECT to an auto host whose server is down: err = %v, want 502", err)
	}
	for _, w := range []string{"could not connect", down, "address", "rule[0]"} {
		if !strings.Contains(ce.body, w) {
			t.Errorf("502 body lacks %q:\n%s", w, ce.body)
		}
	}
	line := lastLogLine(t, p, "CONNECT answered 502")
	wantInLine(t, line, "status=502", "action=auto", "level=warning", "stage=upstream-dial")

	// The same through a real app: a modern one (tunnelled if the server
	// were up) sees the 502 as a CONNECT failure, not as a TLS EOF.
	_, err = p.legacyClient(t, clientOpts{version: tls.VersionTLS13}).Get("https://down.test/")
	if err == nil || !strings.Contains(err.Error(), http.StatusText(http.StatusBadGateway)) {
		t.Errorf("TLS 1.3 app through auto to a closed port: err = %v, want the CONNECT's 502", err)
	}
}

func TestAutoUpstreamTimeoutAnswers504(t *testing.T) {
	p := startProxy(t, pinRule("slow.test", "auto", "192.0.2.1:443"), func(c *Config) {
		c.Policy.Limits.UpstreamTimeout = 200 * time.Millisecond
		c.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
	})
	_, err := p.connect("slow.test:443")
	var ce *connectError
	if !errors.As(err, &ce) || ce.status != http.StatusGatewayTimeout {
		t.Fatalf("CONNECT to an auto host whose server does not answer: err = %v, want 504", err)
	}
	wantInLine(t, lastLogLine(t, p, "CONNECT answered 504"), "status=504")
}

// Dialling before the 200 keeps both auto branches working, and a legacy
// app's bumped connections still reuse pooled upstream connections.
func TestAutoDialsFirstAndStillPools(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "auto", ""))
	legacy := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	for i := range 3 {
		resp, body := get(t, legacy, "https://origin.test/")
		if resp.StatusCode != http.StatusOK || resp.TLS.PeerCertificates[0].Issuer.String() != p.ca.Cert.Subject.String() {
			t.Fatalf("legacy app, request %d: status %d, body %q, issuer %s; want 200 from a bumped connection", i, resp.StatusCode, body, resp.TLS.PeerCertificates[0].Issuer)
		}
		waitPool(t, p, 1)
	}
	if n := strings.Count(p.logs(), "upstream_reused=true"); n < 2 {
		t.Errorf("%d of 3 auto-bumped connections reused a pooled upstream connection, want 2:\n%s", n, p.logs())
	}
	// A modern app after them is tunnelled: the pooled TLS connection is no
	// use for it and a TCP connection is dialled instead.
	resp, _ := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS13, extraRoots: o.ca}), "https://origin.test/")
	if got, want := resp.TLS.PeerCertificates[0].Issuer.String(), o.ca.Cert.Subject.String(); got != want {
		t.Errorf("TLS 1.3 app: issuer %q, want the origin's %q (tunnelled)", got, want)
	}
}

// Issue 13 item 8: a CA constrained by permitted_hosts cannot sign for
// other hosts, so every action but tunnel refuses them with 403 before any
// dial or handshake: auto as well as bump, for legacy and modern apps.
func TestPermittedHostsRefusedUnderAuto(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	up, dials := countingListener(t)
	authority := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "allowed.test")})
	p := startProxyCA(t, authority, pinRule("tunnelled.test", "tunnel", o.addr)+
		pinRule("*.allowed.test", "auto", o.addr, originName, fmt.Sprintf("ca_files = [%q]", o.caFile))+
		pinRule("*", "auto", up))

	for _, target := range []string{"elsewhere.test:443", "api.example.com:443"} {
		_, err := p.connect(target)
		var ce *connectError
		if !errors.As(err, &ce) || ce.status != http.StatusForbidden || !strings.Contains(ce.body, "permitted_hosts") {
			t.Errorf("CONNECT %s under auto with a constrained CA: err = %v, want 403 naming permitted_hosts", target, err)
		}
	}
	if _, err := p.legacyClient(t, clientOpts{version: tls.VersionTLS13}).Get("https://elsewhere.test/"); err == nil || !strings.Contains(err.Error(), http.StatusText(http.StatusForbidden)) {
		t.Errorf("modern app to a non-permitted host under auto: err = %v, want the CONNECT's 403 (not a tunnel)", err)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("the upstream of a refused host was dialled %d times, want 0", n)
	}
	// Permitted hosts are bumped, and tunnel passes any host.
	if resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://api.allowed.test/"); resp.StatusCode != http.StatusOK {
		t.Errorf("permitted host under auto: status %d, body %q", resp.StatusCode, body)
	}
	if !appGets(p, "tunnelled.test:443", tls.VersionTLS13, o.ca) {
		t.Errorf("non-permitted host under tunnel: the app did not get through")
	}
}

// appGets reports whether an app speaking only version gets a 200 for GET /
// through a CONNECT to target, trusting tlsbridge's CA and extra (the
// origin's, for a tunnel); it names the origin as origin.test, the name its
// certificate carries, whatever the target.
func appGets(p *proxy, target string, version uint16, extra ...*ca.Authority) bool {
	raw, err := p.connect(target)
	if err != nil {
		return false
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	roots := p.ca.Pool()
	for _, a := range extra {
		roots.AddCert(a.Cert)
	}
	app := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: roots, MinVersion: version, MaxVersion: version}) //nolint:gosec // the test plays a legacy app
	fmt.Fprintf(app, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(app), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
