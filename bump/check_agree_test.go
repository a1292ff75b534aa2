package bump

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
	"github.com/tlsbridge/tlsbridge/policy"
)

// Issue 13 item 5: `tlsbridge check` agrees with the proxy. For each case
// the proxy answers a real CONNECT and a real TLS 1.0 app, and Check must
// report the same refusal status, and LegacyOK exactly when the app got
// through.
func TestCheckAgreesWithProxy(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	tls10 := newOrigin(t, tls.VersionTLS10, tls.VersionTLS13)
	_, originPort, _ := net.SplitHostPort(o.addr)
	down := closedAddr(t)
	authority := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "origin.test", "allowed.test", "down.test", "old.test")})
	config := fmt.Sprintf("connect_ports = [443, %s]\n", originPort) + caFiles(o.caFile, tls10.caFile) +
		pinRule("denied.test", "deny", o.addr) +
		pinRule("origin.test", "bump", o.addr, originName) +
		pinRule("bump-down.allowed.test", "bump", down) +
		pinRule("*.allowed.test", "auto", o.addr, originName) +
		pinRule("outside.test", "auto", o.addr, originName) +
		pinRule("tunnel-modern.test", "tunnel", o.addr) +
		pinRule("old.test", "tunnel", tls10.addr) +
		pinRule("down.test", "auto", down)
	p := startProxyCA(t, authority, config)
	pol, err := policy.Parse([]byte(config), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		target  string
		status  int  // the proxy's refusal, 0 if none
		through bool // a TLS 1.0 app gets a 200 from the origin
		text    []string
	}{
		{"origin.test:443", 0, true, []string{"bumped and succeed"}},
		{"api.allowed.test:443", 0, true, []string{"bumped and succeed"}},
		{"denied.test:443", 403, false, []string{"refused with 403", "denied by rule[0]"}},
		{"origin.test:8443", 403, false, []string{"refused with 403", "connect_ports"}},
		{"outside.test:443", 403, false, []string{"refused with 403", "permitted_hosts"}},
		{"tunnel-modern.test:443", 0, false, []string{"tunnelled untouched", "does not"}},
		{"old.test:443", 0, true, []string{"tunnelled untouched", "(it does)"}},
		{"down.test:443", 0, false, []string{"would get 502 on its CONNECT", "could not connect"}},
		{"bump-down.allowed.test:443", 0, false, []string{"would get 502 inside its TLS connection"}},
	} {
		t.Run(tt.target, func(t *testing.T) {
			host, port := splitTarget(tt.target, -1)
			r := CheckWith(context.Background(), pol, host, port, CheckOptions{Permits: authority.Permits})
			var b strings.Builder
			r.WriteTo(&b)
			if r.Status != tt.status {
				t.Errorf("Check status = %d, want %d:\n%s", r.Status, tt.status, b.String())
			}
			if r.LegacyOK() != tt.through {
				t.Errorf("Check LegacyOK = %v, want %v:\n%s", r.LegacyOK(), tt.through, b.String())
			}
			for _, w := range tt.text {
				if !strings.Contains(b.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, b.String())
				}
			}

			// The proxy, asked the same.
			c, err := p.connect(tt.target)
			var ce *connectError
			switch {
			case tt.status != 0:
				if !errors.As(err, &ce) || ce.status != tt.status {
					t.Errorf("proxy: CONNECT %s: err = %v, want %d", tt.target, err, tt.status)
				}
			case err == nil:
				c.Close()
			}
			if tt.status != 0 {
				return
			}
			got := appGets(p, tt.target, tls.VersionTLS10, o.ca, tls10.ca)
			if got != tt.through {
				t.Errorf("proxy: a TLS 1.0 app got through = %v, want %v", got, tt.through)
			}
		})
	}
}

// Issue 12: one dial path and one classifier. For origins that fail in
// different ways, the cause and fix `check` prints are, word for word, the
// ones in the 502/504 body the proxy gives a TLS 1.0 app.
func TestCheckSameVerdictAsProxy(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	old := newOrigin(t, tls.VersionTLS10, tls.VersionTLS11)
	down := closedAddr(t)
	config := "[upstream]\nca_files = [" + fmt.Sprintf("%q, %q", o.caFile, old.caFile) + "]\n" +
		pinRule("wrong-name.test", "bump", o.addr, `server_name = "other.test"`) +
		pinRule("untrusted.test", "bump", o.addr, originName, `ca_files = []`) +
		pinRule("old.test", "bump", old.addr, originName) +
		pinRule("down.test", "bump", down)
	p := startProxy(t, config)
	pol := p.srv.Policy()
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	for _, tt := range []struct {
		host   string
		status int
		reason string
	}{
		{"wrong-name.test", 502, reasonHostname},
		{"untrusted.test", 502, reasonUnknownAuthority},
		{"old.test", 502, reasonProtocolVersion},
		{"down.test", 502, reasonDialRefused},
	} {
		t.Run(tt.host, func(t *testing.T) {
			r := CheckWith(context.Background(), pol, tt.host, 443, CheckOptions{})
			if r.Err == nil {
				t.Fatalf("check: no error for %s", tt.host)
			}
			v := classify(r.Err, nil, 0)
			if v.status != tt.status || v.reason != tt.reason {
				t.Errorf("check: status %d reason %q, want %d %q (%v)", v.status, v.reason, tt.status, tt.reason, r.Err)
			}
			resp, err := client.Get("https://" + tt.host + "/")
			if err != nil {
				t.Fatalf("proxy: GET: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("proxy: status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			for _, line := range []string{"What failed: " + v.cause, "How to fix: " + v.fix} {
				if !strings.Contains(string(body), line) {
					t.Errorf("proxy's body lacks check's line\n  %s\nbody:\n%s", line, body)
				}
			}
		})
	}
}
