package policy

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tlsbridge/tlsbridge/ca"
)

// validator collects every problem of a fileConfig, each as a *KeyError
// naming its dotted key, so one run of tlsbridge shows them all.
type validator struct {
	file string // config path for messages
	dir  string // base of relative paths
	errs []error
	// certs caches ca_files by absolute path, so build reuses what was read
	// and checked here, and a file named twice is read once.
	certs map[string]certFile
	// users holds the [auth] users file, read once here for build.
	users map[string][]byte
}

// validated is what validate read from disk, for build to reuse.
type validated struct {
	certs map[string]certFile
	users map[string][]byte
}

// certFile is one read ca_files entry.
type certFile struct {
	certs []*x509.Certificate
	err   error
}

func (v *validator) add(key string, class error, format string, args ...any) {
	v.errs = append(v.errs, &KeyError{File: v.file, Key: key, Msg: fmt.Sprintf(format, args...), Err: class})
}

// validate checks fc and returns the ca_files it read, keyed by absolute
// path, for build. The error joins every problem found.
func (fc *fileConfig) validate(path string) (*validated, error) {
	v := &validator{file: path, dir: baseDir(path), certs: make(map[string]certFile)}
	open := len(fc.AllowClients) > 0

	v.listen("listen", fc.Listen, open)
	for i, c := range fc.AllowClients {
		if _, err := parseClientPrefix(c); err != nil {
			v.add(fmt.Sprintf("allow_clients[%d]", i), ErrInvalid, "%q is not a CIDR or IP address (want e.g. \"10.0.0.0/8\" or \"192.168.1.7\")", c)
		}
	}
	for i, port := range fc.ConnectPorts {
		v.port(fmt.Sprintf("connect_ports[%d]", i), port)
	}

	if _, ok := parseLeafKey(fc.CA.LeafKey); !ok {
		v.add("ca.leaf_key", ErrInvalid, "%q is not a leaf key type (want auto, rsa2048 or ecdsa-p256)", fc.CA.LeafKey)
	}
	for i, h := range fc.CA.PermittedHosts {
		if _, err := ca.ParsePermittedHost(h); err != nil {
			v.add(fmt.Sprintf("ca.permitted_hosts[%d]", i), ErrInvalid, "%q: %v (want a domain such as \"example.com\", which also permits its subdomains)", h, err)
		}
	}

	// The global sections set every key (defaults included).
	v.client("client", fc.Client, fc.Client)
	global := fileUpstreamOverride{fileUpstream: fc.Upstream}
	v.upstream("upstream", global, global)

	if !oneOf(fc.Log.Format, "text", "json") {
		v.add("log.format", ErrInvalid, "%q is not a log format (want text or json)", fc.Log.Format)
	}
	if !oneOf(fc.Log.Level, logLevels...) {
		v.add("log.level", ErrInvalid, "%q is not a log level (want trace, debug, info, warn or error)", fc.Log.Level)
	}
	if fc.Admin.Listen != "" {
		v.listen("admin.listen", fc.Admin.Listen, open)
	}

	v.limits(fc.Limits)
	v.users = v.auth(fc.Auth)

	for i, r := range fc.Rules {
		v.rule(fmt.Sprintf("rule[%d]", i), fc, r)
	}
	for i, l := range fc.Listeners {
		v.listener(fmt.Sprintf("listener[%d]", i), fc, l, open)
	}

	// With any error build never runs, so v.certs goes over as it is.
	return &validated{certs: v.certs, users: v.users}, errors.Join(v.errs...)
}

var logLevels = []string{"trace", "debug", "info", "warn", "error"}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func (v *validator) rule(key string, fc *fileConfig, r fileRule) {
	switch {
	case r.Hosts == nil:
		v.add(key+".hosts", ErrInvalid, `missing: a rule needs at least one host glob, e.g. hosts = ["*.example.com"] (use ["*"] for every host)`)
	case len(*r.Hosts) == 0:
		v.add(key+".hosts", ErrInvalid, `empty: a rule needs at least one host glob, e.g. hosts = ["*.example.com"] (use ["*"] for every host)`)
	}
	if r.Hosts != nil {
		for j, g := range *r.Hosts {
			var m hostMatcher
			if err := m.add(g); err != nil {
				v.add(fmt.Sprintf("%s.hosts[%d]", key, j), ErrInvalid, "%v", err)
			}
		}
	}
	for j, port := range r.Ports {
		v.port(fmt.Sprintf("%s.ports[%d]", key, j), port)
	}
	if r.Action != nil {
		var a Action
		if err := a.UnmarshalText([]byte(*r.Action)); err != nil {
			v.add(key+".action", ErrAction, "%q is not an action (want auto, bump, tunnel or deny)", *r.Action)
		}
	}
	v.client(key+".client", mergeClient(fc.Client, r.Client), r.Client)
	v.upstream(key+".upstream", mergeUpstream(fc.Upstream, r.Upstream), r.Upstream)
	if r.Upstream.Address != nil {
		v.hostPort(key+".upstream.address", *r.Upstream.Address, "the address to dial instead of the CONNECT target")
	}
	if r.Upstream.ServerName != nil {
		v.serverName(key+".upstream.server_name", *r.Upstream.ServerName)
	}
}

func (v *validator) listener(key string, fc *fileConfig, l fileListener, open bool) {
	if l.Listen == nil || *l.Listen == "" {
		v.add(key+".listen", ErrInvalid, `missing: a listener needs the local address it listens on, e.g. listen = "127.0.0.1:8080"`)
	} else {
		v.listen(key+".listen", *l.Listen, open)
	}
	switch {
	case l.UpstreamAddr != nil:
		v.hostPort(key+".upstream", *l.UpstreamAddr, "the server to forward to")
	case l.UpstreamSettings.Address != nil:
		v.hostPort(key+".upstream.address", *l.UpstreamSettings.Address, "the server to forward to")
	default:
		v.add(key+".upstream", ErrInvalid, `missing: a listener needs the server to forward to, e.g. upstream = "legacy-api.example.com:443" (or address = "host:port" inside [listener.upstream])`)
	}
	if l.ServerName != nil {
		v.serverName(key+".server_name", *l.ServerName)
	}
	if l.UpstreamSettings.ServerName != nil {
		v.serverName(key+".upstream.server_name", *l.UpstreamSettings.ServerName)
		if l.ServerName != nil && *l.ServerName != *l.UpstreamSettings.ServerName {
			v.add(key+".upstream.server_name", ErrInvalid, "%q differs from %s.server_name %q; set only one", *l.UpstreamSettings.ServerName, key, *l.ServerName)
		}
	}
	v.upstream(key+".upstream", mergeUpstream(fc.Upstream, l.UpstreamSettings), l.UpstreamSettings)
	v.client(key+".client", mergeClient(fc.Client, l.Client), l.Client)
	if l.UpstreamTLS != nil && !*l.UpstreamTLS && (l.ClientTLS == nil || !*l.ClientTLS) {
		v.add(key+".upstream_tls", ErrInvalid, "false needs client_tls = true: with plain TCP on both sides there is no TLS to terminate or add (set client_tls = true for a TLS front to a plain backend, or remove upstream_tls)")
	}
	if l.ALPN != nil {
		v.alpn(key+".alpn", *l.ALPN)
	}
}

// maxALPNLen is the longest protocol name ALPN can carry: a one-byte length
// prefix (RFC 7301 section 3.1).
const maxALPNLen = 255

// alpn checks a listener's pinned ALPN list.
func (v *validator) alpn(key string, protos []string) {
	if len(protos) == 0 {
		v.add(key, ErrInvalid, `empty: list the protocols to pin, e.g. alpn = ["h2", "http/1.1"], or remove the key to pass the app's offer through`)
	}
	for i, p := range protos {
		switch {
		case p == "":
			v.add(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, `empty protocol name (want an ALPN name such as "h2" or "http/1.1")`)
		case len(p) > maxALPNLen:
			v.add(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, "protocol name of %d bytes is too long (ALPN allows at most %d)", len(p), maxALPNLen)
		case slices.Contains(protos[:i], p):
			v.add(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, "%q is listed twice", p)
		}
	}
}

// client checks the effective (merged) client versions of the section at
// key; set holds the keys the section itself sets, so an inverted pair is
// reported at the key the section wrote, and only once.
func (v *validator) client(key string, eff, set fileClient) {
	v.versions(key, eff.MinTLS, eff.MaxTLS, set.MinTLS, set.MaxTLS, false)
}

// upstream checks the effective upstream settings of the section at key,
// like client, plus its own ca_files.
func (v *validator) upstream(key string, eff fileUpstreamOverride, set fileUpstreamOverride) {
	v.versions(key, eff.MinTLS, eff.MaxTLS, set.MinTLS, set.MaxTLS, true)
	if set.CAFiles != nil {
		for i, f := range *set.CAFiles {
			v.caFile(fmt.Sprintf("%s.ca_files[%d]", key, i), f)
		}
	}
}

// versions checks a min_tls/max_tls pair. min and max are the effective
// values; minSet and maxSet are non-nil for the keys the section itself
// wrote (the global section writes all of its keys). Nothing is reported
// for inherited values: their own section reports them.
func (v *validator) versions(key string, min, max, minSet, maxSet *string, upstream bool) {
	parse := func(k string, s *string, set bool) (uint16, bool) {
		if s == nil {
			return 0, false
		}
		ver, err := ParseTLSVersion(*s)
		if err != nil {
			if set {
				hint := ""
				if upstream && looksLikeSSL(*s) {
					hint = "; SSL 3.0 and older are not supported"
				}
				v.add(k, ErrTLSVersion, "%q is not a TLS version (%s)%s", *s, wantTLSVersions, hint)
			}
			return 0, false
		}
		return ver, true
	}
	lo, okLo := parse(key+".min_tls", min, minSet != nil)
	hi, okHi := parse(key+".max_tls", max, maxSet != nil)
	if !okLo || !okHi || lo <= hi || (minSet == nil && maxSet == nil) {
		return
	}
	if minSet != nil {
		v.add(key+".min_tls", ErrTLSVersion, "%q is above max_tls %q; raise max_tls or lower min_tls", *min, *max)
	} else {
		v.add(key+".max_tls", ErrTLSVersion, "%q is below min_tls %q; raise max_tls or lower min_tls", *max, *min)
	}
}

func looksLikeSSL(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "ssl") || s == "3.0" || s == "2.0" || strings.HasPrefix(s, "0.")
}

// caFile reads and checks one ca_files entry.
func (v *validator) caFile(key, file string) {
	if file == "" {
		v.add(key, ErrInvalid, "empty path (want a PEM file of root certificates)")
		return
	}
	abs := resolvePath(v.dir, file)
	cf, ok := v.certs[abs]
	if !ok {
		cf = readCertFile(abs)
		v.certs[abs] = cf
	}
	if cf.err != nil {
		v.add(key, ErrInvalid, "%q: %v", file, cf.err)
	}
}

// readCertFile reads every CERTIFICATE block of a PEM file.
func readCertFile(path string) certFile {
	// Only regular files: a device such as /dev/zero would never end.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return certFile{err: fmt.Errorf("read %s: not a regular file", path)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return certFile{err: err}
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return certFile{err: fmt.Errorf("parse certificate in %s: %w", path, err)}
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return certFile{err: fmt.Errorf("no PEM certificate in %s (want one or more -----BEGIN CERTIFICATE----- blocks)", path)}
	}
	return certFile{certs: certs}
}

// resolvePath makes a config path absolute against the config's directory.
func resolvePath(dir, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

func (v *validator) port(key string, port int) {
	if port < 1 || port > 65535 {
		v.add(key, ErrInvalid, "%d is not a TCP port (want 1 to 65535)", port)
	}
}

// listen checks a listen address: host:port, and loopback unless
// allow_clients is set, so tlsbridge is never an open proxy by accident.
func (v *validator) listen(key, addr string, open bool) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, ErrInvalid, "%q is not host:port (want e.g. \"127.0.0.1:3128\")", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, ErrInvalid, "%q has no valid port (want a number from 0 to 65535, e.g. \"127.0.0.1:3128\")", addr)
		return
	}
	if !open && !isLoopbackListen(addr) {
		v.add(key, ErrNotLoopback, `%q is not a loopback address; set allow_clients to the client networks allowed to use the proxy (e.g. ["10.0.0.0/8"]) or listen on 127.0.0.1`, addr)
	}
}

// hostPort checks a "host:port" to dial.
func (v *validator) hostPort(key, addr, what string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		v.add(key, ErrInvalid, "%q is not host:port (want %s, e.g. \"api.example.com:443\")", addr, what)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(key, ErrInvalid, "%q has no valid port (want a number from 1 to 65535)", addr)
		return
	}
	if _, ok := parseIPLiteral(host); ok {
		return
	}
	if _, err := normalizeName(host); err != nil {
		v.add(key, ErrInvalid, "%q: host %q is not a valid host name", addr, host)
	}
}

// serverName checks an SNI/verification name override; "" means "use the
// target host" and is fine.
func (v *validator) serverName(key, name string) {
	if name == "" {
		return
	}
	if _, ok := parseIPLiteral(name); ok {
		return
	}
	if strings.ContainsAny(name, ":*/") {
		v.add(key, ErrInvalid, "%q is not a host name (want a name such as \"api.example.com\", without port or wildcard)", name)
		return
	}
	if _, err := normalizeName(name); err != nil {
		v.add(key, ErrInvalid, "%q is not a host name (want a name such as \"api.example.com\")", name)
	}
}

// parseClientPrefix parses an allow_clients entry: a CIDR, or a single IP
// meaning just that address.
func parseClientPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return unmapPrefix(p), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// mergeClient applies the keys a section sets over the global [client].
func mergeClient(global, o fileClient) fileClient {
	if o.MinTLS != nil {
		global.MinTLS = o.MinTLS
	}
	if o.MaxTLS != nil {
		global.MaxTLS = o.MaxTLS
	}
	return global
}

// mergeUpstream applies the keys a section sets over the global
// [upstream]. ca_files replaces the global list, like every other key.
func mergeUpstream(global fileUpstream, o fileUpstreamOverride) fileUpstreamOverride {
	m := fileUpstreamOverride{fileUpstream: global, Address: o.Address, ServerName: o.ServerName}
	if o.MinTLS != nil {
		m.MinTLS = o.MinTLS
	}
	if o.MaxTLS != nil {
		m.MaxTLS = o.MaxTLS
	}
	if o.Verify != nil {
		m.Verify = o.Verify
	}
	if o.CAFiles != nil {
		m.CAFiles = o.CAFiles
	}
	return m
}
