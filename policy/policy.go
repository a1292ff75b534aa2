package policy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// ClientTLS is the app-facing side of a bumped connection: the TLS versions
// the proxy accepts from the app. Versions are crypto/tls constants
// (tls.VersionTLS10 ... tls.VersionTLS13).
type ClientTLS struct {
	MinVersion, MaxVersion uint16
}

// UpstreamTLS is the server-facing side: how the proxy dials and verifies
// the origin. Versions are crypto/tls constants.
type UpstreamTLS struct {
	MinVersion, MaxVersion uint16
	// Verify is false only when the config says verify = false, an explicit
	// opt-in that tlsbridge logs at Warn on start (see [Policy.Warnings]).
	Verify bool
	// CAFiles are the extra root files, as absolute paths (relative ones are
	// resolved against the config file's directory).
	CAFiles []string
	// RootCAs holds the system roots (x509.SystemCertPool, or an empty pool
	// where the system has none) plus every certificate in CAFiles. Never
	// nil; shared between rules with the same CAFiles, so never modify it.
	RootCAs *x509.CertPool
	// Address is the "host:port" to dial instead of the CONNECT target; ""
	// means the target itself.
	Address string
	// ServerName overrides the SNI and the name the certificate is verified
	// against; "" means the target host.
	ServerName string
	// Proxy is the parent HTTP proxy the server is reached through (an
	// HTTP CONNECT, then tlsbridge's own verified TLS inside the tunnel);
	// nil means a direct connection (no proxy key, or proxy = "direct").
	Proxy *ParentProxy
	// ClientCert is the certificate and key (client_cert, client_key)
	// presented to a server that asks for one (mutual TLS); nil for none.
	// A reload reads the files again, so a renewed certificate is used by
	// new connections.
	ClientCert *tls.Certificate
	// ClientCertFile and ClientKeyFile are the absolute paths ClientCert
	// was read from, for messages.
	ClientCertFile, ClientKeyFile string
	// FetchIntermediates completes a server chain that lacks its
	// intermediate from the leaf's AIA "CA Issuers" http:// URL; the chain
	// must still end in RootCAs.
	FetchIntermediates bool
}

// ParentProxy is a parent (corporate) HTTP proxy: [upstream] proxy and
// proxy_auth_file.
type ParentProxy struct {
	// URL is the proxy as written, "http://host:port"; it never carries
	// credentials (the loader refuses a URL with userinfo).
	URL string
	// Addr is the "host:port" dialled.
	Addr string
	// Section is where proxy is written: "default" ([upstream]),
	// "rule[N]" or "listener[N]", for fixes that name the key.
	Section string
	// AuthFile is the absolute path of proxy_auth_file, "" for none.
	AuthFile string
	// Authorization is the Proxy-Authorization header value ("Basic …")
	// made from AuthFile's user:password, "" for none. It is a secret:
	// never logged or printed.
	Authorization string
}

// String is the proxy's URL, without credentials.
func (p *ParentProxy) String() string { return p.URL }

// Rule is one [[rule]] of the config, with the global settings merged in.
// Rules are read-only once built: a new config means a new [Policy].
type Rule struct {
	// Name is "rule[N]" (N the index in the file) or "default" for the
	// fallback; it is what access logs print in the rule field.
	Name string
	// Hosts are the host globs as written in the config, for logs.
	Hosts []string
	// Ports are the destination ports the rule applies to; empty means any.
	Ports  []int
	Action Action
	// Client is the global [client] with [rule.client] keys applied.
	Client ClientTLS
	// Upstream is the global [upstream] with [rule.upstream] keys applied.
	Upstream UpstreamTLS

	match hostMatcher // compiled from Hosts
}

// Listener is one [[listener]]: a fixed tunnel from a local port to one
// upstream, for apps that cannot use a proxy.
type Listener struct {
	Name     string // "listener[N]", N the index in the file
	Listen   string // local "host:port"
	Upstream string // "host:port" of the origin
	// ClientTLS is false when the app speaks plain TCP to Listen, true when
	// it speaks (legacy) TLS that the proxy terminates.
	ClientTLS bool
	// PlainUpstream is true when the config says upstream_tls = false: the
	// proxy terminates the app's TLS (ClientTLS is then always true) and
	// forwards plain TCP to a local backend, a TLS front for a plain service.
	PlainUpstream bool
	// ALPN, when set, pins the application protocols (RFC 7301): they are
	// offered upstream when the app offers none, limit what the app's offer
	// may pass on, and answer the app when the upstream negotiates nothing
	// (always so with PlainUpstream). Empty means "pass the app's offer
	// through and answer with what the upstream chose".
	ALPN []string
	// Client is the global [client] with [listener.client] keys applied; it
	// applies when ClientTLS is true.
	Client ClientTLS
	// UpstreamTLS is the global [upstream] with [listener.upstream] keys
	// applied; its Address, when set, is dialed instead of Upstream.
	UpstreamTLS UpstreamTLS
}

// CAConfig is the [ca] table.
type CAConfig struct {
	// Dir is the CA directory, absolute (relative values are resolved
	// against the config file's directory), or "" when the config does not
	// set it and the flag, environment or XDG default applies.
	Dir string
	// LeafKey is the leaf key type of leaf_key: ca.KeyRSA2048
	// ("rsa2048"), ca.KeyECDSAP256 ("ecdsa-p256") or LeafKeyAuto ("auto":
	// ECDSA where the app's ClientHello allows it, else RSA).
	LeafKey ca.KeyType
	// PermittedHosts are the opt-in X.509 name constraints for a new CA,
	// parsed and normalized (lower-case, IDNA→ASCII; a leading "." is
	// kept), ready for ca.Options.
	PermittedHosts []ca.PermittedHost
}

// LeafKeyAuto is CAConfig.LeafKey for leaf_key = "auto": the zero
// ca.KeyType, which names no key type, so the leaf key is chosen per
// ClientHello.
const LeafKeyAuto ca.KeyType = 0

// parseLeafKey parses a leaf_key value: "auto" or the config name of a
// ca.KeyType ("rsa2048", "ecdsa-p256"), exact spelling.
func parseLeafKey(s string) (ca.KeyType, bool) {
	if s == "auto" {
		return LeafKeyAuto, true
	}
	for _, kt := range ca.KeyTypes() {
		if s == kt.String() {
			return kt, true
		}
	}
	return 0, false
}

// LogConfig is the [log] table: Format is "text" or "json"; Level is
// "trace", "debug", "info", "warn" or "error".
type LogConfig struct{ Format, Level string }

// AdminConfig is the [admin] table.
type AdminConfig struct {
	// Listen is the "host:port" of the admin endpoint (/ca.pem, /metrics,
	// /healthz, /readyz), or "" for none.
	Listen string
	// DrainDelay is how long, after SIGTERM, /readyz answers 503 while
	// the proxy and listener ports still accept, so a load balancer that
	// polls /readyz takes the instance out before its ports close (see
	// DefaultDrainDelay). It applies only when something has asked
	// /readyz since the start: nobody else is waiting for it.
	DrainDelay time.Duration
}

// DefaultDrainDelay is [admin] drain_delay when unset: 5 s covers a
// balancer that checks every second and needs two failures (HAProxy
// "inter 1s fall 2", as in docs/fleet.md: at most 3 s from the first 503
// to "DOWN") with room for a slow check, and Kubernetes' endpoint removal,
// which usually takes a second or two. HAProxy's defaults (inter 2s,
// fall 3) need up to 8 s: set drain_delay to that.
const DefaultDrainDelay = 5 * time.Second

// Policy is a validated, immutable config. Build it with [Load], [Parse]
// or [Default]; a reload builds a new Policy rather than changing one, so a
// Policy is safe for concurrent use without locks.
type Policy struct {
	Path         string // config file path, "" when built from Default
	Listen       string // proxy "host:port"
	AllowClients []netip.Prefix
	ConnectPorts []int
	CA           CAConfig
	Client       ClientTLS
	Upstream     UpstreamTLS
	Log          LogConfig
	Admin        AdminConfig
	Limits       Limits
	Auth         Auth
	// Rules in file order; the first match wins.
	Rules []*Rule
	// Default is the rule used when none matches: action auto with the
	// global client and upstream settings, Name "default".
	Default   *Rule
	Listeners []*Listener

	warnings []Warning // see Warnings
}

// AllowsPort reports whether a CONNECT to port is allowed (port is in
// ConnectPorts); other ports answer 403.
func (p *Policy) AllowsPort(port int) bool {
	return slices.Contains(p.ConnectPorts, port)
}

// AllowsClient reports whether a client at ip may use the proxy: loopback
// clients always may; others only when ip is in AllowClients.
// IPv4-mapped IPv6 addresses are treated as IPv4.
func (p *Policy) AllowsClient(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	for _, pfx := range p.AllowClients {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// LoopbackOnly reports whether the proxy's Listen host is loopback
// (127.0.0.0/8, ::1 or "localhost"), that is, unreachable from other hosts.
func (p *Policy) LoopbackOnly() bool {
	return isLoopbackListen(p.Listen)
}

// Insecure returns the names of the places where upstream verification is
// off ("upstream", "rule[N]", "listener[N]"), in file order, inherited
// values included. It is empty for a config that never says verify =
// false. [Policy.Warnings] names the keys that turn it off, for logging.
func (p *Policy) Insecure() []string {
	var names []string
	if !p.Upstream.Verify {
		names = append(names, "upstream")
	}
	for _, r := range p.Rules {
		if !r.Upstream.Verify {
			names = append(names, r.Name)
		}
	}
	for _, l := range p.Listeners {
		if !l.UpstreamTLS.Verify {
			names = append(names, l.Name)
		}
	}
	return names
}

// isLoopbackListen reports whether a "host:port" listen address only
// accepts connections from this host. "" hosts (":3128") and unspecified
// addresses listen everywhere.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// Equal reports whether l and o configure the same listener: same name,
// port, upstream, TLS settings and roots (the pools are compared by their
// certificates, so a changed ca_files file counts as a change). A reload
// keeps running the listeners that are Equal and re-opens the others.
func (l *Listener) Equal(o *Listener) bool {
	return l.Name == o.Name && l.Listen == o.Listen && l.Upstream == o.Upstream &&
		l.ClientTLS == o.ClientTLS && l.PlainUpstream == o.PlainUpstream &&
		slices.Equal(l.ALPN, o.ALPN) && l.Client == o.Client && l.UpstreamTLS.equal(o.UpstreamTLS)
}

func (u UpstreamTLS) equal(o UpstreamTLS) bool {
	return u.MinVersion == o.MinVersion && u.MaxVersion == o.MaxVersion && u.Verify == o.Verify &&
		slices.Equal(u.CAFiles, o.CAFiles) && u.RootCAs.Equal(o.RootCAs) &&
		u.Address == o.Address && u.ServerName == o.ServerName &&
		u.FetchIntermediates == o.FetchIntermediates && sameProxy(u.Proxy, o.Proxy) &&
		u.ClientCertFile == o.ClientCertFile && u.ClientKeyFile == o.ClientKeyFile
}

// sameProxy compares parents by address and credentials file. The
// contents of the secret files (client_cert, client_key,
// proxy_auth_file) are left out on purpose: a renewed certificate or
// password is applied to a running listener's new connections (bump reads
// them from the reloaded policy) without closing its port and its open
// connections.
func sameProxy(a, b *ParentProxy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.URL == b.URL && a.Addr == b.Addr && a.Section == b.Section && a.AuthFile == b.AuthFile
}
