package bump

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"crypto/tls"

	"github.com/tlsbridge/tlsbridge/policy"
)

// A server that ends the handshake with a certificate alert: with the
// rule's client_cert, the 502 says that certificate was rejected and
// names its file; without, it says tlsbridge sent none and the fix (which
// loads) sets client_cert and client_key.
func TestTrustAlertFromServer(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := newClientCA(t, "trust alert CA").issue(t, dir, "alert", "alert-app")
	newClientCA(t, "hint CA").issue(t, dir, "client", "hint") // client.pem, client-key.pem: the fix's example names
	configPath := filepath.Join(dir, "config.toml")
	cfg := fmt.Sprintf("\n[[rule]]\nhosts = [\"nocert.test\"]\naction = \"bump\"\n\n[[rule]]\nhosts = [\"withcert.test\"]\naction = \"bump\"\n[rule.upstream]\nclient_cert = %q\nclient_key = %q\n", certFile, keyFile)
	pol, err := policy.Parse([]byte(cfg), configPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []uint8{alertBadCertificate, alertUnknownCA, alertCertificateUnknown} {
		alert := &net.OpError{Op: "remote error", Err: tls.AlertError(code)}
		for _, tt := range []struct {
			host      string
			want, not []string
		}{
			{"nocert.test", []string{"tlsbridge sent it no certificate", "[rule.upstream] of rule[0] has no client_cert", "set `client_cert = \"client.pem\"` in [rule.upstream] of rule[0]"}, nil},
			{"withcert.test", []string{"rejected tlsbridge's client certificate", `"CN=alert-app"`, certFile}, []string{"no client_cert", "sent it no certificate"}},
		} {
			t.Run(fmt.Sprintf("%s/alert%d", tt.host, code), func(t *testing.T) {
				rule := pol.Match(tt.host, 443)
				addr, name := upstreamTarget(rule, tt.host, 443)
				v := classify(&upstreamError{stage: "handshake", host: tt.host, addr: addr, name: name, rule: rule, err: alert}, nil, 0)
				text := v.cause + "\n" + v.fix
				if v.reason != reasonClientCert || v.status != 502 {
					t.Errorf("reason %q status %d, want %q 502", v.reason, v.status, reasonClientCert)
				}
				for _, w := range tt.want {
					if !strings.Contains(text, w) {
						t.Errorf("lacks %q:\n%s", w, text)
					}
				}
				for _, w := range tt.not {
					if strings.Contains(text, w) {
						t.Errorf("says %q:\n%s", w, text)
					}
				}
				if tt.host != "nocert.test" {
					return
				}
				// Apply the fix: the config still loads and the rule
				// now has the client certificate.
				fixed := strings.Replace(cfg, "hosts = [\"nocert.test\"]\naction = \"bump\"\n", "hosts = [\"nocert.test\"]\naction = \"bump\"\n[rule.upstream]\nclient_cert = \"client.pem\"\nclient_key = \"client-key.pem\"\n", 1)
				p2, err := policy.Parse([]byte(fixed), configPath)
				if err != nil {
					t.Fatalf("the fix does not load: %v", err)
				}
				if p2.Match("nocert.test", 443).Upstream.ClientCert == nil {
					t.Error("after the fix, the rule has no client_cert")
				}
			})
		}
	}
}
