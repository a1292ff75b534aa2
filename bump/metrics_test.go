package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// TestMetrics drives one of each kind of connection through a proxy and
// checks the series /metrics then shows on the admin handler.
func TestMetrics(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	untrusted := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13) // its CA is not in ca_files
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "plain ok")
	}))
	defer backend.Close()

	authority := catest.New(t)
	_, backendPort, _ := net.SplitHostPort(backend.Listener.Addr().String())
	p := startProxyCA(t, authority, "connect_ports = [443, "+backendPort+"]\n"+caFiles(o.caFile)+
		pinRule("bumped.test", "bump", o.addr, originName)+
		pinRule("origin.test", "auto", o.addr, originName)+
		pinRule("untrusted.test", "bump", untrusted.addr, originName)+
		pinRule("*.denied.test", "deny", ""), func(c *Config) {
		// A cache whose mints are timed, as cmd/tlsbridge builds it.
		mints := NewLeafMints()
		certs, err := ca.NewCache(authority, ca.CacheConfig{OnMint: mints.Observe})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { certs.Close() })
		c.Certs, c.LeafMints = certs, mints
	})

	// A legacy app, bumped: TLS 1.0 in, TLS 1.3 out.
	if resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://bumped.test/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("bumped.test: status %d, body %q", resp.StatusCode, body)
	}
	// A modern app, tunnelled untouched by auto.
	if resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS13, extraRoots: o.ca}), "https://origin.test/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("origin.test (auto): status %d, body %q", resp.StatusCode, body)
	}
	// A denied CONNECT.
	var ce *connectError
	if _, err := p.connect("api.denied.test:443"); !errors.As(err, &ce) || ce.status != http.StatusForbidden {
		t.Fatalf("CONNECT api.denied.test:443: err = %v, want 403", err)
	}
	// An upstream whose certificate does not verify: 502 inside TLS 1.0.
	if resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://untrusted.test/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("untrusted.test: status %d, body %q, want 502", resp.StatusCode, body)
	}
	// A plain http:// request.
	plain := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr})}}
	if resp, body := get(t, plain, backend.URL+"/x"); resp.StatusCode != http.StatusOK {
		t.Fatalf("plain GET: status %d, body %q", resp.StatusCode, body)
	}

	admin := httptest.NewServer(NewAdminHandler(authority, p.srv.MetricsHandler(), nil))
	defer admin.Close()

	// Access lines of relayed connections are written when the relay ends,
	// a moment after the client has its answer.
	var got map[string]float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = scrape(t, admin.URL+"/metrics")
		if sumPrefix(got, "tlsbridge_connections_total{") == 5 && got["tlsbridge_active_connections"] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	want := map[string]float64{
		`tlsbridge_connections_total{action="bump",client_tls="1.0",upstream_tls="1.3"}`:         1,
		`tlsbridge_connections_total{action="auto-tunnel",client_tls="1.3",upstream_tls="none"}`: 1,
		`tlsbridge_connections_total{action="deny",client_tls="none",upstream_tls="none"}`:       1,
		`tlsbridge_connections_total{action="bump",client_tls="1.0",upstream_tls="none"}`:        1,
		`tlsbridge_connections_total{action="forward",client_tls="none",upstream_tls="none"}`:    1,

		`tlsbridge_client_hello_max_version_total{version="1.0"}`: 2,
		`tlsbridge_client_hello_max_version_total{version="1.1"}`: 0,
		`tlsbridge_client_hello_max_version_total{version="1.2"}`: 0,
		`tlsbridge_client_hello_max_version_total{version="1.3"}`: 1,

		`tlsbridge_handshake_failures_total{reason="unknown_authority",side="upstream"}`: 1,

		`tlsbridge_active_connections`: 0,

		// bumped.test and untrusted.test, one ECDSA leaf each.
		`tlsbridge_cert_cache_hits_total`:               0,
		`tlsbridge_cert_cache_misses_total`:             2,
		`tlsbridge_cert_cache_mints_total`:              2,
		`tlsbridge_cert_cache_entries`:                  2,
		`tlsbridge_cert_mint_seconds_count`:             2,
		`tlsbridge_cert_mint_seconds_bucket{le="+Inf"}`: 2,
	}
	for _, prefix := range []string{"tlsbridge_connections_total", "tlsbridge_client_hello_max_version_total", "tlsbridge_handshake_failures_total"} {
		for _, k := range sortedSeries(got, prefix) {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected series %s = %v", k, got[k])
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := got[k]; !ok || v != want[k] {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want[k])
		}
	}
	for _, dir := range []string{"app_to_upstream", "upstream_to_app"} {
		if k := `tlsbridge_bytes_total{direction="` + dir + `"}`; got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	// The runtime and process collectors share the registry.
	for _, k := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing from /metrics", k)
		}
	}
	if t.Failed() {
		t.Logf("scraped:\n%s", strings.Join(sortedSeries(got, "tlsbridge_"), "\n"))
	}
}

// TestMetricsListener counts a legacy TLS app on a [[listener]]: action
// listener, both versions, the ClientHello, and the exact bytes relayed.
func TestMetricsListener(t *testing.T) {
	up := newStreamServer(t, tls.VersionTLS12, tls.VersionTLS12)
	p := startProxy(t, listenerConfig(up.addr, up.caFile, "client_tls = true\n[listener.client]\nmin_tls = \"1.0\""))
	addr, _ := runListener(t, p, 0)

	c, err := tls.Dial("tcp", addr, p.appTLS(tls.VersionTLS10, nil))
	if err != nil {
		t.Fatalf("TLS 1.0 handshake with the listener: %v", err)
	}
	defer c.Close()
	payload := []byte("legacy line protocol\n")
	if got := roundTrip(t, c, payload); string(got) != string(payload) {
		t.Fatalf("reply = %q, want %q", got, payload)
	}
	<-up.versions

	srv := httptest.NewServer(p.srv.MetricsHandler())
	defer srv.Close()
	const conn = `tlsbridge_connections_total{action="listener",client_tls="1.0",upstream_tls="1.2"}`
	var got map[string]float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = scrape(t, srv.URL); got[conn] == 1 && got["tlsbridge_active_connections"] == 0 {
			break
		}
	}
	n := float64(len(payload))
	for k, want := range map[string]float64{
		conn: 1,
		`tlsbridge_client_hello_max_version_total{version="1.0"}`: 1,
		`tlsbridge_bytes_total{direction="app_to_upstream"}`:      n,
		`tlsbridge_bytes_total{direction="upstream_to_app"}`:      n,
		`tlsbridge_active_connections`:                            0,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

// TestMetricsPerServer checks that two Servers do not share counters (no
// global registry).
func TestMetricsPerServer(t *testing.T) {
	a := startProxy(t, `
[[rule]]
hosts = ["*"]
action = "deny"
`)
	b := startProxy(t, "")
	if _, err := a.connect("x.test:443"); err == nil {
		t.Fatal("CONNECT through a deny-all proxy succeeded")
	}
	srvA := httptest.NewServer(a.srv.MetricsHandler())
	defer srvA.Close()
	srvB := httptest.NewServer(b.srv.MetricsHandler())
	defer srvB.Close()
	const k = `tlsbridge_connections_total{action="deny",client_tls="none",upstream_tls="none"}`
	if got := scrape(t, srvA.URL)[k]; got != 1 {
		t.Errorf("server A: %s = %v, want 1", k, got)
	}
	if got, ok := scrape(t, srvB.URL)[k]; ok {
		t.Errorf("server B: %s = %v, want no such series", k, got)
	}
}

func TestReason(t *testing.T) {
	opErr := func(op string, err error) error { return &net.OpError{Op: op, Net: "tcp", Err: err} }
	upstream := func(stage string, err error) error {
		return &upstreamError{stage: stage, host: "h.test", addr: "192.0.2.1:443", name: "h.test", err: err}
	}
	ssl3Only := &clientHello{info: &tls.ClientHelloInfo{SupportedVersions: []uint16{0x0300}, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}}
	rc4Only := &clientHello{info: &tls.ClientHelloInfo{SupportedVersions: []uint16{tls.VersionTLS10}, CipherSuites: []uint16{0x0005}}}
	fine := &clientHello{info: &tls.ClientHelloInfo{SupportedVersions: []uint16{tls.VersionTLS10}, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}}
	tls12App := &clientHello{info: &tls.ClientHelloInfo{SupportedVersions: []uint16{tls.VersionTLS12}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}}

	tests := []struct {
		name  string
		err   error
		hello *clientHello
		want  string
	}{
		{"dns", upstream("dial", opErr("dial", &net.DNSError{Name: "h.test", Err: "no such host", IsNotFound: true})), nil, "dns"},
		{"dial-refused", upstream("dial", opErr("dial", syscall.ECONNREFUSED)), nil, "dial_refused"},
		{"dial-timeout", upstream("dial", context.DeadlineExceeded), nil, "timeout"},
		{"handshake-timeout", upstream("handshake", opErr("read", timeoutErr{})), nil, "timeout"},
		{"unknown-authority", upstream("handshake", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), nil, "unknown_authority"},
		{"hostname", upstream("handshake", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "h.test"}}), nil, "hostname"},
		{"expired", upstream("handshake", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}), nil, "expired"},
		{"bad-certificate", upstream("handshake", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}}), nil, "bad_certificate"},
		{"upstream-protocol-version", upstream("handshake", opErr("remote error", tls.AlertError(alertProtocolVersion))), nil, "protocol_version"},
		{"upstream-closed", upstream("handshake", io.EOF), nil, "closed"},
		{"app-distrusts-ca", opErr("remote error", tls.AlertError(alertUnknownCA)), fine, "unknown_authority"},
		{"app-bad-certificate", opErr("remote error", tls.AlertError(alertBadCertificate)), fine, "unknown_authority"},
		{"app-sslv2", &helloError{kind: errSSLv2Hello}, nil, "sslv2_hello"},
		{"app-not-tls", &helloError{kind: errNotTLS}, nil, "not_tls"},
		{"app-closed", &helloError{kind: io.EOF}, nil, "closed"},
		{"app-ssl3-only", errors.New("the app's ClientHello cannot be served"), ssl3Only, "protocol_version"},
		{"app-rc4-only", errors.New("the app's ClientHello cannot be served"), rc4Only, "no_shared_cipher"},
		{"app-seclevel", opErr("remote error", tls.AlertError(alertInternalError)), fine, "seclevel"},
		{"app-seclevel-handshake-failure", opErr("remote error", tls.AlertError(alertHandshakeFailure)), fine, "seclevel"},
		{"tls12-app-internal-error", opErr("remote error", tls.AlertError(alertInternalError)), tls12App, "other"},
		{"unknown", errors.New("something else"), nil, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err, tt.hello, 0).reason; got != tt.want {
				t.Errorf("classify(%v).reason = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestVersionLabel(t *testing.T) {
	for v, want := range map[uint16]string{
		0:                "none",
		0x0300:           "ssl3.0",
		tls.VersionTLS10: "1.0",
		tls.VersionTLS11: "1.1",
		tls.VersionTLS12: "1.2",
		tls.VersionTLS13: "1.3",
		0x7f1c:           "other", // a TLS 1.3 draft: must not become a series of its own
		0x0a0a:           "other",
	} {
		if got := versionLabel(v); got != want {
			t.Errorf("versionLabel(%#04x) = %q, want %q", v, got, want)
		}
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// scrape fetches a Prometheus text exposition and returns its samples by
// series ("name{label="value",...}" as written, labels sorted by the
// library).
func scrape(t testing.TB, u string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want the text format", u, ct)
	}
	samples := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("GET %s: bad sample line %q", u, line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("GET %s: bad value in %q: %v", u, line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

func sortedSeries(m map[string]float64, prefix string) []string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var n float64
	for _, k := range sortedSeries(m, prefix) {
		n += m[k]
	}
	return n
}
