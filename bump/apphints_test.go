package bump

import (
	"crypto/tls"
	"net"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Issue 13 item 9: app-side handshake failures are warnings with a hint a
// user can act on, whatever the app's stack does when it gives up.

// closeAfterHello is an app's connection that closes, without an alert,
// instead of sending its second flight: what an OpenSSL 3 based app (Node,
// Python) may do at its default security level after the server's
// ServerKeyExchange.
type closeAfterHello struct {
	net.Conn
	writes int
}

func (c *closeAfterHello) Write(p []byte) (int, error) {
	c.writes++
	if c.writes > 1 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// lastLogLine returns the last line of the proxy's log holding want.
func lastLogLine(t testing.TB, p *proxy, want string) string {
	t.Helper()
	waitLog(t, p, want)
	lines := strings.Split(p.logs(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], want) {
			return lines[i]
		}
	}
	return ""
}

func wantInLine(t testing.TB, line string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("log line lacks %q:\n%s", w, line)
		}
	}
}

func TestLegacyAppClosingDuringHandshakeWarnsWithSecLevelHint(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "auto", ""))

	raw := p.mustConnect(t, "origin.test:443")
	defer raw.Close()
	app := tls.Client(&closeAfterHello{Conn: raw}, &tls.Config{ServerName: "origin.test", RootCAs: p.ca.Pool(),
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the test plays a legacy app
	if err := app.Handshake(); err == nil {
		t.Fatal("handshake succeeded; the app was meant to close during it")
	}
	line := lastLogLine(t, p, "app closed the connection during its TLS handshake")
	wantInLine(t, line, "level=warning", "@SECLEVEL=0", "trusts tlsbridge's CA", "client_offered=TLS1.0-TLS1.0")

	// An app that closes before sending any ClientHello is no handshake
	// failure: noted at Info, no hint.
	raw2 := p.mustConnect(t, "origin.test:443")
	raw2.Close()
	line = lastLogLine(t, p, "before its TLS handshake")
	wantInLine(t, line, "level=info")
	if strings.Contains(line, "hint=") {
		t.Errorf("a connection closed before its ClientHello got a hint:\n%s", line)
	}
}

// Real OpenSSL 3 clients: TLS 1.0 without @SECLEVEL=0 through CONNECT, and
// TLS 1.3 to the proxy port itself without trusting the CA, which reaches
// tlsbridge as bad_record_mac.
func TestOpenSSLClientsGetHints(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (apt-get install openssl)")
	}
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "auto", ""))
	sClient := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", append([]string{"s_client"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("openssl s_client %v succeeded, want a failed handshake:\n%s", args, out)
		}
	}

	sClient("-proxy", p.addr, "-connect", "origin.test:443", "-servername", "origin.test", "-tls1")
	line := lastLogLine(t, p, "app-facing TLS handshake failed")
	wantInLine(t, line, "level=warning", "client_offered=TLS1.0-TLS1.0", "@SECLEVEL=0")

	sClient("-connect", p.addr, "-tls1_3", "-verify_return_error")
	line = lastLogLine(t, p, "TLS handshake on the proxy port failed")
	wantInLine(t, line, "level=warning", "client_offered=TLS1.3-TLS1.3", "does not trust the proxy's own certificate", "--proxy-cacert", "HTTPS_PROXY=http://"+p.addr)
}

func TestProxyPortHandshakeFailureWarns(t *testing.T) {
	p := startProxy(t, "[client]\nmin_tls = \"1.2\"\n")
	handshake := func(cfg *tls.Config) {
		t.Helper()
		c, err := tls.Dial("tcp", p.addr, cfg)
		if err == nil {
			c.Close()
			t.Fatal("TLS to the proxy port succeeded, want a failure")
		}
	}

	// A TLS 1.3 app that does not trust the CA (Go sends bad_certificate).
	handshake(&tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS13})
	line := lastLogLine(t, p, "TLS handshake on the proxy port failed")
	wantInLine(t, line, "level=warning", "bad certificate", "does not trust the proxy's own certificate", "HTTPS_PROXY=http://")

	// Any other failure still warns and says what the https:// proxy URL
	// means.
	handshake(&tls.Config{ServerName: "localhost", RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the test plays a legacy app
	waitLog(t, p, "client_offered=TLS1.0-TLS1.0")
	line = lastLogLine(t, p, "client_offered=TLS1.0-TLS1.0")
	wantInLine(t, line, "level=warning", "TLS handshake on the proxy port failed", "speaks TLS to the proxy port")
}

func TestECDSAOnlyAppWithoutP256(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	raw := p.mustConnect(t, "origin.test:443")
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	app := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: p.ca.Pool(), MaxVersion: tls.VersionTLS12,
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		CurvePreferences: []tls.CurveID{tls.CurveP384, tls.X25519}})
	if err := app.Handshake(); err == nil {
		t.Fatal("handshake succeeded; an ECDSA-only app without P-256 cannot take tlsbridge's certificates")
	}
	line := lastLogLine(t, p, "app-facing TLS handshake failed")
	hint := line[strings.Index(line, "hint="):]
	wantInLine(t, hint, "P-384", "X25519", "not P-256", "only ECDSA cipher suites", "add P-256")
	if strings.Contains(hint, "c02b") {
		t.Errorf("hint shows raw suite ids:\n%s", hint)
	}
	srv := httptest.NewServer(p.srv.MetricsHandler())
	defer srv.Close()
	if got := scrape(t, srv.URL)[`tlsbridge_handshake_failures_total{reason="no_shared_cipher",side="app"}`]; got != 1 {
		t.Errorf("no_shared_cipher app failures = %v, want 1", got)
	}
}

func TestObsoleteSuitesHintSpeaksUserTerms(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "origin.test", "bump", ""))
	raw := p.mustConnect(t, "origin.test:443")
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	app := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, //nolint:gosec // the test plays a legacy app
		CipherSuites: []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA}})
	if err := app.Handshake(); err == nil {
		t.Fatal("an RC4-only app was served")
	}
	line := lastLogLine(t, p, "app-facing TLS handshake failed")
	wantInLine(t, line, "TLS_RSA_WITH_RC4_128_SHA", "only cipher suites tlsbridge does not accept", "RC4", "enable AES suites")
	if strings.Contains(line, "legacyClientCipherSuites") {
		t.Errorf("hint names an internal variable:\n%s", line)
	}
}
