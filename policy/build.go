package policy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// build turns a decoded fileConfig into a Policy in one pass: each value is
// parsed once, straight into the Policy field that holds it (versions,
// prefixes, globs, actions, durations, root pools), and each problem is
// recorded as a *KeyError naming its dotted key, so one run reports them
// all. The Policy is returned only when there are none.
func build(fc *fileConfig, path string) (*Policy, error) {
	b := &builder{
		file:  path,
		dir:   baseDir(path),
		certs: make(map[string]certFile),
		pools: make(map[string]*x509.CertPool),
		weak:  make(map[string]weakUpstream),
	}
	open := len(fc.AllowClients) > 0
	// In file order, so the problems are listed as a reader meets them.
	p := &Policy{Path: path}
	p.Listen = b.listen("listen", fc.Listen, open)
	p.AllowClients = b.allowClients(fc.AllowClients)
	p.ConnectPorts = b.ports("connect_ports", fc.ConnectPorts)
	p.CA = b.ca(fc.CA)
	// The global sections set every key (defaults included), so they
	// inherit nothing.
	p.Client = b.client("client", fc.Client, ClientTLS{})
	p.Upstream = b.upstream("upstream", fc.Upstream, UpstreamTLS{})
	p.Log = b.log(fc.Log)
	if fc.Admin.Listen != "" {
		p.Admin.Listen = b.listen("admin.listen", fc.Admin.Listen, open)
	}
	p.Admin.DrainDelay = b.durationKey("admin.drain_delay", fc.Admin.DrainDelay, 0, 5*time.Minute)
	p.Limits = b.limits(fc.Limits)
	p.Auth = b.auth(fc.Auth)
	p.Default = &Rule{Name: "default", Action: ActionAuto, Client: p.Client, Upstream: p.Upstream}
	for i, fr := range fc.Rules {
		p.Rules = append(p.Rules, b.rule(fmt.Sprintf("rule[%d]", i), fr, p))
	}
	for i, fl := range fc.Listeners {
		p.Listeners = append(p.Listeners, b.listener(fmt.Sprintf("listener[%d]", i), fl, p, open))
	}
	if err := errors.Join(b.errs...); err != nil {
		return nil, err
	}
	p.warnings = b.warnings(fc, p)
	return p, nil
}

// builder holds what build shares between sections: the problems found,
// the ca_files read (by absolute path, so a file named twice is read once)
// and the root pools, one per distinct ca_files list, so rules that inherit
// the global list share its pool.
type builder struct {
	file  string // config path for messages
	dir   string // base of relative paths
	errs  []error
	certs map[string]certFile
	pools map[string]*x509.CertPool // "\x00"-joined absolute paths → pool
	sys   *x509.CertPool
	// weak records, by section key ("rule[0].upstream"), the upstream
	// settings a section itself writes that Warnings reports.
	weak map[string]weakUpstream
}

func (b *builder) add(key string, class error, format string, args ...any) {
	b.errs = append(b.errs, &KeyError{File: b.file, Key: key, Msg: fmt.Sprintf(format, args...), Err: class})
}

func (b *builder) allowClients(list []string) []netip.Prefix {
	var out []netip.Prefix
	for i, c := range list {
		pfx, err := parseClientPrefix(c)
		if err != nil {
			b.add(fmt.Sprintf("allow_clients[%d]", i), ErrInvalid, "%q is not a CIDR or IP address (want e.g. \"10.0.0.0/8\" or \"192.168.1.7\")", c)
			continue
		}
		out = append(out, pfx)
	}
	return out
}

// ports checks a list of TCP ports and returns a copy.
func (b *builder) ports(key string, ports []int) []int {
	for i, port := range ports {
		b.port(fmt.Sprintf("%s[%d]", key, i), port)
	}
	return append([]int(nil), ports...)
}

func (b *builder) ca(fc fileCA) CAConfig {
	var c CAConfig
	if fc.Dir != "" {
		c.Dir = resolvePath(b.dir, fc.Dir)
	}
	kt, ok := parseLeafKey(fc.LeafKey)
	if !ok {
		b.add("ca.leaf_key", ErrInvalid, "%q is not a leaf key type (want auto, rsa2048 or ecdsa-p256)", fc.LeafKey)
	}
	c.LeafKey = kt
	for i, h := range fc.PermittedHosts {
		ph, err := ca.ParsePermittedHost(h)
		if err != nil {
			b.add(fmt.Sprintf("ca.permitted_hosts[%d]", i), ErrInvalid, "%q: %v (want a domain such as \"example.com\", which also permits its subdomains)", h, err)
			continue
		}
		c.PermittedHosts = append(c.PermittedHosts, ph)
	}
	return c
}

var logLevels = []string{"trace", "debug", "info", "warn", "error"}

func (b *builder) log(fc fileLog) LogConfig {
	if !oneOf(fc.Format, "text", "json") {
		b.add("log.format", ErrInvalid, "%q is not a log format (want text or json)", fc.Format)
	}
	if !oneOf(fc.Level, logLevels...) {
		b.add("log.level", ErrInvalid, "%q is not a log level (want trace, debug, info, warn or error)", fc.Level)
	}
	return LogConfig{Format: fc.Format, Level: fc.Level}
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func (b *builder) rule(key string, fr fileRule, p *Policy) *Rule {
	r := &Rule{Name: key}
	switch {
	case fr.Hosts == nil:
		b.add(key+".hosts", ErrInvalid, `missing: a rule needs at least one host glob, e.g. hosts = ["*.example.com"] (use ["*"] for every host)`)
	case len(*fr.Hosts) == 0:
		b.add(key+".hosts", ErrInvalid, `empty: a rule needs at least one host glob, e.g. hosts = ["*.example.com"] (use ["*"] for every host)`)
	default:
		r.Hosts = append([]string(nil), *fr.Hosts...)
	}
	for j, g := range r.Hosts {
		if err := r.match.add(g); err != nil {
			b.add(fmt.Sprintf("%s.hosts[%d]", key, j), ErrInvalid, "%v", err)
		}
	}
	r.Ports = b.ports(key+".ports", fr.Ports)
	if fr.Action != nil {
		if err := r.Action.UnmarshalText([]byte(*fr.Action)); err != nil {
			b.add(key+".action", ErrAction, "%q is not an action (want auto, bump, tunnel or deny)", *fr.Action)
		}
	}
	r.Client = b.client(key+".client", fr.Client, p.Client)
	r.Upstream = b.upstream(key+".upstream", fr.Upstream.fileUpstream, p.Upstream)
	if a := fr.Upstream.Address; a != nil {
		r.Upstream.Address = b.hostPort(key+".upstream.address", *a, "the address to dial instead of the CONNECT target")
	}
	if n := fr.Upstream.ServerName; n != nil {
		r.Upstream.ServerName = b.serverName(key+".upstream.server_name", *n)
	}
	return r
}

func (b *builder) listener(key string, fl fileListener, p *Policy, open bool) *Listener {
	l := &Listener{Name: key}
	if fl.Listen == nil || *fl.Listen == "" {
		b.add(key+".listen", ErrInvalid, `missing: a listener needs the local address it listens on, e.g. listen = "127.0.0.1:8080"`)
	} else {
		l.Listen = b.listen(key+".listen", *fl.Listen, open)
	}
	// The target is upstream = "host:port", or address in the
	// [listener.upstream] table; it is dialed as it is, so
	// UpstreamTLS.Address stays "".
	switch {
	case fl.Target != nil:
		l.Upstream = b.hostPort(key+".upstream", *fl.Target, "the server to forward to")
	case fl.Table.Address != nil:
		l.Upstream = b.hostPort(key+".upstream.address", *fl.Table.Address, "the server to forward to")
	default:
		b.add(key+".upstream", ErrInvalid, `missing: a listener needs the server to forward to, e.g. upstream = "legacy-api.example.com:443" (or address = "host:port" inside [listener.upstream])`)
	}
	// server_name may be written beside upstream (the contract's spelling)
	// or inside [listener.upstream]; both name one setting.
	var serverName string
	if fl.ServerName != nil {
		serverName = b.serverName(key+".server_name", *fl.ServerName)
	}
	if n := fl.Table.ServerName; n != nil {
		serverName = b.serverName(key+".upstream.server_name", *n)
		if fl.ServerName != nil && *fl.ServerName != *n {
			b.add(key+".upstream.server_name", ErrInvalid, "%q differs from %s.server_name %q; set only one", *n, key, *fl.ServerName)
		}
	}
	l.UpstreamTLS = b.upstream(key+".upstream", fl.Table.fileUpstream, p.Upstream)
	l.UpstreamTLS.ServerName = serverName
	l.Client = b.client(key+".client", fl.Client, p.Client)
	if fl.ClientTLS != nil {
		l.ClientTLS = *fl.ClientTLS
	}
	if fl.UpstreamTLS != nil {
		l.PlainUpstream = !*fl.UpstreamTLS
		if l.PlainUpstream && !l.ClientTLS {
			b.add(key+".upstream_tls", ErrInvalid, "false needs client_tls = true: with plain TCP on both sides there is no TLS to terminate or add (set client_tls = true for a TLS front to a plain backend, or remove upstream_tls)")
		}
	}
	if fl.ALPN != nil {
		l.ALPN = b.alpn(key+".alpn", *fl.ALPN)
	}
	return l
}

// client parses the min_tls/max_tls a client section sets over base, the
// global [client] it inherits from.
func (b *builder) client(key string, fc fileClient, base ClientTLS) ClientTLS {
	lo, hi := b.versions(key, fc.MinTLS, fc.MaxTLS, base.MinVersion, base.MaxVersion, false)
	return ClientTLS{MinVersion: lo, MaxVersion: hi}
}

// upstream parses the keys an upstream section sets over base, the global
// [upstream] it inherits from; ca_files replaces base's list, like every
// other key. address and server_name are the caller's: they mean different
// things in a rule and in a listener.
func (b *builder) upstream(key string, fu fileUpstream, base UpstreamTLS) UpstreamTLS {
	u := base
	u.MinVersion, u.MaxVersion = b.versions(key, fu.MinTLS, fu.MaxTLS, base.MinVersion, base.MaxVersion, true)
	if fu.Verify != nil {
		u.Verify = *fu.Verify
	}
	if fu.CAFiles != nil {
		u.CAFiles = nil
		for i, f := range *fu.CAFiles {
			if abs, ok := b.caFile(fmt.Sprintf("%s.ca_files[%d]", key, i), f); ok {
				u.CAFiles = append(u.CAFiles, abs)
			}
		}
		u.RootCAs = b.pool(u.CAFiles)
	}
	if fu.FetchIntermediates != nil {
		u.FetchIntermediates = *fu.FetchIntermediates
	}
	b.parent(key, fu, &u)
	b.clientCert(key, fu, &u)
	b.weak[key] = weakUpstream{verifyOff: fu.Verify != nil && !*fu.Verify, minTLS: setVersion(fu.MinTLS, u.MinVersion)}
	return u
}

// versions parses a min_tls/max_tls pair. min and max are the values the
// section writes (nil: inherit baseMin, baseMax, already parsed by their own
// section; 0 when that failed). An inverted pair is reported at the key the
// section wrote, and only when it wrote one, so an inherited problem is
// reported once, at its own section.
func (b *builder) versions(key string, min, max *string, baseMin, baseMax uint16, upstream bool) (lo, hi uint16) {
	lo, hi = baseMin, baseMax
	if min != nil {
		lo = b.version(key+".min_tls", *min, upstream)
	}
	if max != nil {
		hi = b.version(key+".max_tls", *max, upstream)
	}
	if lo == 0 || hi == 0 || lo <= hi || (min == nil && max == nil) {
		return lo, hi
	}
	if min != nil {
		b.add(key+".min_tls", ErrTLSVersion, "%q is above max_tls %q; raise max_tls or lower min_tls", TLSVersionName(lo), TLSVersionName(hi))
	} else {
		b.add(key+".max_tls", ErrTLSVersion, "%q is below min_tls %q; raise max_tls or lower min_tls", TLSVersionName(hi), TLSVersionName(lo))
	}
	return lo, hi
}

// version parses one TLS version; 0 means it failed and is recorded.
func (b *builder) version(key, s string, upstream bool) uint16 {
	v, err := ParseTLSVersion(s)
	if err != nil {
		hint := ""
		if upstream && looksLikeSSL(s) {
			hint = "; SSL 3.0 and older are not supported"
		}
		b.add(key, ErrTLSVersion, "%q is not a TLS version (%s)%s", s, wantTLSVersions, hint)
		return 0
	}
	return v
}

// setVersion is v when the section wrote s itself, else 0.
func setVersion(s *string, v uint16) uint16 {
	if s == nil {
		return 0
	}
	return v
}

// pool returns the system roots plus the certificates of files, which
// caFile has read.
func (b *builder) pool(files []string) *x509.CertPool {
	key := strings.Join(files, "\x00")
	if p, ok := b.pools[key]; ok {
		return p
	}
	if b.sys == nil {
		// SystemCertPool returns a copy, so adding to it changes nothing
		// outside this policy. Where the system has no roots, an empty pool
		// still means "verify", only against ca_files.
		sys, err := x509.SystemCertPool()
		if err != nil || sys == nil {
			sys = x509.NewCertPool()
		}
		b.sys = sys
	}
	p := b.sys
	if len(files) > 0 {
		p = b.sys.Clone()
		for _, f := range files {
			for _, c := range b.certs[f].certs {
				p.AddCert(c)
			}
		}
	}
	b.pools[key] = p
	return p
}
