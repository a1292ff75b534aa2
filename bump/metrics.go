package bump

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/ca"
)

// Metrics are served in the Prometheus text format by the admin listener
// (issue 7). Every label comes from a small closed set: actions, TLS
// versions, failure reasons, directions. Host names never become labels, so
// a proxy that sees a million hosts still exports a few hundred series; the
// access log is where hosts are.
//
// Each Server has its own registry (STYLE item 5: no package-level mutable
// state), so tests and several Servers in one process do not share counters.

// Label values of side in tlsbridge_handshake_failures_total.
const (
	sideApp      = "app"      // the app-facing handshake (or ClientHello)
	sideUpstream = "upstream" // the dial or handshake towards the server
)

// metrics is one Server's collectors and the registry they live in.
type metrics struct {
	reg         *prometheus.Registry
	connections *prometheus.CounterVec // action, client_tls, upstream_tls
	helloMax    *prometheus.CounterVec // version
	failures    *prometheus.CounterVec // side, reason
	bytes       *prometheus.CounterVec // direction
	active      prometheus.Gauge
	authFails   *prometheus.CounterVec
	aiaFetches  *prometheus.CounterVec // result
	handshakes  *prometheus.CounterVec // engine, resumed

	census *census      // the legacy-TLS census (census.go); nil: none
	apps   *appResolver // app identities for the census (appid.go)
}

// newMetrics builds the registry of a Server: its own counters, the leaf
// cache's counters read at scrape time, the mint histogram when mints is
// non-nil, and the Go runtime and process collectors.
func newMetrics(certs *ca.Cache, mints *LeafMints) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsbridge_connections_total",
			Help: "Connections handled (one per access-log line, failed ones included), by action (deny, tunnel, bump, auto-bump, auto-tunnel, listener, forward) and the TLS versions of both sides as in the access line: client_tls is the version negotiated with the app (for auto-tunnel the highest it offered), upstream_tls the one negotiated with the server; none when tlsbridge did not terminate that side or the handshake failed.",
		}, []string{"action", "client_tls", "upstream_tls"}),
		helloMax: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsbridge_client_hello_max_version_total",
			Help: "ClientHellos seen after CONNECT or on a client_tls listener, by the highest TLS version the app offered: how many apps still cannot speak TLS 1.2.",
		}, []string{"version"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsbridge_handshake_failures_total",
			Help: "Failed handshakes and dials, by side (app: the app-facing TLS; upstream: the dial or TLS towards the server) and reason.",
		}, []string{"side", "reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsbridge_bytes_total",
			Help: "Bytes relayed by tunnels, bumped connections and listeners, added when the connection ends (app_to_upstream: plaintext when bumped, TLS records when tunnelled).",
		}, []string{"direction"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tlsbridge_active_connections",
			Help: "CONNECT and listener connections open now.",
		}),
		authFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsbridge_auth_failures_total",
			Help: "Proxy requests refused with 407 for their credentials, by result: bad (a wrong password or an unknown user, checked with bcrypt) or limited (answered at once because their client address had too many failures in the last minute). Requests without credentials are not counted.",
		}, []string{"result"}),
	}
	m.aiaFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsbridge_aia_fetches_total",
		Help: "Intermediate certificates looked up for servers that send an incomplete chain (fetch_intermediates), by result: fetched (from the leaf's AIA URL), cached (a cache hit), failed.",
	}, []string{"result"})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsbridge_app_handshakes_total",
		Help: "Completed app-facing TLS handshakes, by engine (go: crypto/tls; openssl: the legacy engine of a build with the tag openssl) and resumed (true: an abbreviated handshake, by session ID or ticket). The resumption ratio is resumed=\"true\" over all.",
	}, []string{"engine", "resumed"})
	for _, e := range []string{"go", "openssl"} {
		m.handshakes.WithLabelValues(e, "true")
		m.handshakes.WithLabelValues(e, "false")
	}
	for _, r := range []string{"fetched", "cached", "failed"} {
		m.aiaFetches.WithLabelValues(r)
	}
	m.authFails.WithLabelValues("bad")
	m.authFails.WithLabelValues("limited")
	// Zero series for every version an app can offer, so "how many apps
	// offer at most TLS 1.0" is 0, not absent, before the first one.
	for _, v := range []string{"1.0", "1.1", "1.2", "1.3"} {
		m.helloMax.WithLabelValues(v)
	}
	m.bytes.WithLabelValues("app_to_upstream")
	m.bytes.WithLabelValues("upstream_to_app")

	m.reg.MustRegister(m.connections, m.helloMax, m.failures, m.bytes, m.active, m.authFails, m.aiaFetches, m.handshakes,
		cacheCollector{certs},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if mints != nil {
		m.reg.MustRegister(mints.h)
	}
	return m
}

// watchSessions exports the legacy engine's session cache: what it holds
// and what it dropped for room (a cache too small for its apps: raise
// [limits] session_cache_size).
func (m *metrics) watchSessions(sessions func() (held, evicted int)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tlsbridge_legacy_sessions",
			Help: "Sessions the legacy engine holds for apps that resume by session ID, at most [limits] session_cache_size.",
		}, func() float64 { held, _ := sessions(); return float64(held) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tlsbridge_legacy_session_evictions_total",
			Help: "Sessions the legacy engine dropped before they expired to make room for new ones; growing while apps still resume means [limits] session_cache_size is too small for them.",
		}, func() float64 { _, evicted := sessions(); return float64(evicted) }),
	)
}

// MetricsHandler serves the Server's metrics in the Prometheus text format,
// for the admin listener's /metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		ErrorLog:      newStdLogger(s.log, logrus.WarnLevel),
		ErrorHandling: promhttp.ContinueOnError, // a failed process read must not hide the rest
	})
}

// access counts a connection at its access line (or its failure line):
// action and both TLS versions, and the bytes it relayed; and enters it in
// the census. Every connection passes here exactly once (failed calls it
// for failures), which is what makes the census complete.
func (m *metrics) access(ci *connInfo) {
	m.count(ci)
	m.observe(ci, "", nil)
}

// observe enters ci in the census under its app's identity, now or when
// the resolver has found its process. A request refused for its
// credentials proves no identity and is left out (a flood of them would
// only churn the census).
func (m *metrics) observe(ci *connInfo, side string, v *verdict) {
	if m.census == nil || ci.host == "" || ci.action == "auth" {
		return
	}
	o := observation(ci, side, v)
	m.apps.identify(ci.app, fallbackID(ci), func(id appID) { m.census.add(id, o) })
}

// fallbackID is the app's identity without a process: its proxy user, or
// its address.
func fallbackID(ci *connInfo) appID {
	host := ci.clientAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ci.user != "" {
		return appID{Kind: appUser, Name: ci.user, Addr: host}
	}
	return appID{Kind: appAddress, Name: host, Addr: host}
}

// count is access without the census.
func (m *metrics) count(ci *connInfo) {
	m.connections.WithLabelValues(ci.action, versionLabel(ci.clientTLS), versionLabel(ci.upstreamTLS)).Inc()
	if n := ci.stats.in.Load(); n > 0 {
		m.bytes.WithLabelValues("app_to_upstream").Add(float64(n))
	}
	if n := ci.stats.out.Load(); n > 0 {
		m.bytes.WithLabelValues("upstream_to_app").Add(float64(n))
	}
}

// failed counts a connection that ended with a failed handshake or dial on
// side, and the reason (classify's verdict v, whose cause and fix go to the
// census).
func (m *metrics) failed(ci *connInfo, side string, v verdict) {
	m.count(ci)
	m.failures.WithLabelValues(side, v.reason).Inc()
	m.observe(ci, side, &v)
}

// authFailed counts a request refused for its credentials (result "bad" or
// "limited").
func (m *metrics) authFailed(result string) {
	m.authFails.WithLabelValues(result).Inc()
}

// hello counts the highest version an app offered in its ClientHello.
// appHandshake counts a completed app-facing handshake.
func (m *metrics) appHandshake(st appState) {
	m.handshakes.WithLabelValues(st.engine, strconv.FormatBool(st.resumed)).Inc()
}

func (m *metrics) hello(maxOffered uint16) {
	m.helloMax.WithLabelValues(versionLabel(maxOffered)).Inc()
}

// forward counts a plain-HTTP proxy request (action forward, or deny when a
// rule refused it); err is the transport's error, if any.
func (m *metrics) forward(denied bool, resp *http.Response, err error) {
	action, upstream := "forward", uint16(0)
	if denied {
		action = "deny"
	}
	if resp != nil && resp.TLS != nil { // an https:// URL sent to the proxy
		upstream = resp.TLS.Version
	}
	m.connections.WithLabelValues(action, "none", versionLabel(upstream)).Inc()
	if err != nil {
		ue := &upstreamError{stage: "dial", err: err}
		m.failures.WithLabelValues(sideUpstream, ue.verdict().reason).Inc()
	}
}

// versionLabel names a TLS version for a label: "1.0" … "1.3", "ssl3.0",
// "none" when there is none, and "other" for anything else, so a client
// that offers made-up versions cannot create series.
func versionLabel(v uint16) string {
	switch v {
	case 0:
		return "none"
	case 0x0300:
		return "ssl3.0"
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return "other"
}

// Values of reason in tlsbridge_handshake_failures_total: a closed set.
const (
	reasonTimeout          = "timeout"            // no answer in time (either side)
	reasonUnknownAuthority = "unknown_authority"  // upstream: chain not trusted; app: the app does not trust tlsbridge's CA (its alert)
	reasonHostname         = "hostname"           // upstream certificate not valid for the name
	reasonExpired          = "expired"            // upstream certificate expired or not yet valid
	reasonBadCertificate   = "bad_certificate"    // upstream certificate rejected for another reason
	reasonProtocolVersion  = "protocol_version"   // no common TLS version
	reasonNoSharedCipher   = "no_shared_cipher"   // the app offered no suite tlsbridge accepts (or only ECDSA suites without the P-256 curve of its ECDSA leaf)
	reasonSSLv2Hello       = "sslv2_hello"        // SSLv2-format ClientHello (old Java, old OpenSSL)
	reasonNotTLS           = "not_tls"            // the app sent something that is not TLS
	reasonClosed           = "closed"             // the peer closed the connection during the handshake
	reasonSecLevel         = "seclevel"           // a TLS 1.0/1.1 app aborted with internal_error or handshake_failure: OpenSSL 3 at its default security level (see appVerdict)
	reasonDialRefused      = "dial_refused"       // upstream port closed
	reasonDNS              = "dns"                // upstream host name did not resolve
	reasonParentProxy      = "parent_proxy"       // the parent proxy ([upstream] proxy) refused the CONNECT, could not be reached or answered garbage
	reasonClientCert       = "client_certificate" // the server asked for a client certificate and refused the handshake: none configured, or client_cert rejected
	reasonIncompleteChain  = "incomplete_chain"   // the server sent no intermediate and fetch_intermediates is off, or the AIA fetch failed
	reasonOther            = "other"
)

// cacheCollector exports the leaf cache's counters, read with Stats at
// scrape time, so the cache needs no metrics code of its own.
type cacheCollector struct{ c *ca.Cache }

var (
	cacheHitsDesc = prometheus.NewDesc("tlsbridge_cert_cache_hits_total",
		"Leaf certificate requests answered from the cache.", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("tlsbridge_cert_cache_misses_total",
		"Leaf certificate requests not answered from the cache (they minted a leaf or waited for a concurrent mint of the same one).", nil, nil)
	cacheMintsDesc = prometheus.NewDesc("tlsbridge_cert_cache_mints_total",
		"Leaf certificates signed.", nil, nil)
	cacheEntriesDesc = prometheus.NewDesc("tlsbridge_cert_cache_entries",
		"Leaf certificates cached now.", nil, nil)
)

func (cc cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHitsDesc
	ch <- cacheMissesDesc
	ch <- cacheMintsDesc
	ch <- cacheEntriesDesc
}

func (cc cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.Stats()
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(cacheMintsDesc, prometheus.CounterValue, float64(st.Mints))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(st.Len))
}

// LeafMints times leaf mints for tlsbridge_cert_mint_seconds. The ca.Cache
// is built before the Server, so the caller makes one, passes its Observe as
// ca.CacheConfig.OnMint and itself as Config.LeafMints. It is safe for
// concurrent use.
type LeafMints struct{ h prometheus.Histogram }

// NewLeafMints returns an empty mint histogram.
func NewLeafMints() *LeafMints {
	return &LeafMints{h: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tlsbridge_cert_mint_seconds",
		Help: "Time to sign one leaf certificate on a cache miss.",
		// A mint is one signature with the process-wide key plus
		// building and parsing the certificate: 0.1 ms to a few ms here
		// (STYLE item 20); the upper buckets catch a starved CPU.
		Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3},
	})}
}

// Observe records one mint; it is the ca.CacheConfig.OnMint hook.
func (m *LeafMints) Observe(d time.Duration) { m.h.Observe(d.Seconds()) }
