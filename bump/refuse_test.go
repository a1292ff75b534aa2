package bump

import (
	"crypto/tls"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An app whose TLS versions a rule's client.min_tls excludes is refused
// before anything is dialled, with the protocol_version alert crypto/tls
// would send, a log line naming the table to change, and the
// protocol_version reason in the metrics.
func TestClientVersionRefusedBeforeDial(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	var dials atomic.Int64
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	p := startProxy(t, pinRule("modern-only.test", "bump", up.Addr().String())+"[rule.client]\nmin_tls = \"1.2\"\n")

	raw := p.mustConnect(t, "modern-only.test:443")
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	app := tls.Client(raw, &tls.Config{ServerName: "modern-only.test", RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}) //nolint:gosec // the test plays a legacy app
	err = app.Handshake()
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.0-1.1 app against client.min_tls 1.2: handshake error %v, want a protocol_version alert", err)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("the upstream was dialled %d times for an app that is refused anyway, want 0", n)
	}
	// The alert goes out before the log line and the counter: wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.logs(), "app-facing TLS handshake failed") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	logs := p.logs()
	for _, want := range []string{"TLS1.0-TLS1.1", "[rule.client] of rule[0] allows TLS1.2-TLS1.3", "lower client.min_tls"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	srv := httptest.NewServer(p.srv.MetricsHandler())
	defer srv.Close()
	m := scrape(t, srv.URL)
	if got := m[`tlsbridge_handshake_failures_total{reason="protocol_version",side="app"}`]; got != 1 {
		t.Errorf("protocol_version app failures = %v, want 1; series: %v", got, sortedSeries(m, "tlsbridge_handshake_failures_total"))
	}
}
