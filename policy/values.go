package policy

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/tlsbridge/tlsbridge/ca"
)

// This file holds the checks and parsers of single values that the
// builder (build.go) calls, each once per value.

// certFile is one read ca_files entry.
type certFile struct {
	certs []*x509.Certificate
	err   error
}

// maxALPNLen is the longest protocol name ALPN can carry: a one-byte length
// prefix (RFC 7301 section 3.1).
const maxALPNLen = 255

// alpn checks a listener's pinned ALPN list and returns a copy.
func (b *builder) alpn(key string, protos []string) []string {
	if len(protos) == 0 {
		b.add(key, ErrInvalid, `empty: list the protocols to pin, e.g. alpn = ["h2", "http/1.1"], or remove the key to pass the app's offer through`)
	}
	for i, p := range protos {
		switch {
		case p == "":
			b.add(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, `empty protocol name (want an ALPN name such as "h2" or "http/1.1")`)
		case len(p) > maxALPNLen:
			b.add(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, "protocol name of %d bytes is too long (ALPN allows at most %d)", len(p), maxALPNLen)
		case slices.Contains(protos[:i], p):
			b.add(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, "%q is listed twice", p)
		}
	}
	return append([]string(nil), protos...)
}

func looksLikeSSL(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "ssl") || s == "3.0" || s == "2.0" || strings.HasPrefix(s, "0.")
}

// caFile reads one ca_files entry (once per absolute path) and returns
// that path, which b.pool then finds the certificates under.
func (b *builder) caFile(key, file string) (string, bool) {
	if file == "" {
		b.add(key, ErrInvalid, "empty path (want a PEM file of root certificates)")
		return "", false
	}
	abs := resolvePath(b.dir, file)
	cf, ok := b.certs[abs]
	if !ok {
		cf = readCertFile(abs)
		b.certs[abs] = cf
	}
	if cf.err != nil {
		b.add(key, ErrInvalid, "%q: %v", file, cf.err)
		return "", false
	}
	return abs, true
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

func (b *builder) port(key string, port int) {
	if port < 1 || port > 65535 {
		b.add(key, ErrInvalid, "%d is not a TCP port (want 1 to 65535)", port)
	}
}

// listen checks a listen address: host:port, and loopback unless
// allow_clients is set, so tlsbridge is never an open proxy by accident.
// It returns addr.
func (b *builder) listen(key, addr string, open bool) string {
	_, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		b.add(key, ErrInvalid, "%q is not host:port (want e.g. \"127.0.0.1:3128\")", addr)
	case !validPort(port, 0):
		b.add(key, ErrInvalid, "%q has no valid port (want a number from 0 to 65535, e.g. \"127.0.0.1:3128\")", addr)
	case !open && !isLoopbackListen(addr):
		b.add(key, ErrNotLoopback, `%q is not a loopback address; set allow_clients to the client networks allowed to use the proxy (e.g. ["10.0.0.0/8"]) or listen on 127.0.0.1`, addr)
	}
	return addr
}

// validPort reports whether port is a decimal number from min to 65535.
func validPort(port string, min int) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= min && n <= 65535
}

// hostPort checks a "host:port" to dial and returns it.
func (b *builder) hostPort(key, addr, what string) string {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil || host == "":
		b.add(key, ErrInvalid, "%q is not host:port (want %s, e.g. \"api.example.com:443\")", addr, what)
	case !validPort(port, 1):
		b.add(key, ErrInvalid, "%q has no valid port (want a number from 1 to 65535)", addr)
	case !validHost(host):
		b.add(key, ErrInvalid, "%q: host %q is not a valid host name", addr, host)
	}
	return addr
}

// validHost reports whether host is an IP literal or a host name.
func validHost(host string) bool {
	if _, ok := parseIPLiteral(host); ok {
		return true
	}
	_, err := normalizeName(host)
	return err == nil
}

// serverName checks an SNI/verification name override and returns it; ""
// means "use the target host" and is fine.
func (b *builder) serverName(key, name string) string {
	if _, ok := parseIPLiteral(name); ok || name == "" {
		return name
	}
	if strings.ContainsAny(name, ":*/") {
		b.add(key, ErrInvalid, "%q is not a host name (want a name such as \"api.example.com\", without port or wildcard)", name)
	} else if _, err := normalizeName(name); err != nil {
		b.add(key, ErrInvalid, "%q is not a host name (want a name such as \"api.example.com\")", name)
	}
	return name
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

// parent parses the proxy and proxy_auth_file an upstream section writes
// into u, which holds what it inherits. A section that names its own proxy
// inherits no credentials (they were meant for another proxy); a section
// that writes only proxy_auth_file sets the credentials of the proxy it
// inherits.
func (b *builder) parent(key string, fu fileUpstream, u *UpstreamTLS) {
	if fu.Proxy != nil {
		u.Proxy = b.proxyURL(key+".proxy", *fu.Proxy)
	}
	if fu.ProxyAuthFile == nil || *fu.ProxyAuthFile == "" && u.Proxy == nil {
		return
	}
	if u.Proxy == nil {
		if fu.Proxy == nil || *fu.Proxy == "direct" || *fu.Proxy == "" {
			b.add(key+".proxy_auth_file", ErrInvalid, `set without a parent proxy; set proxy = "http://host:port" in the same section or in [upstream], or remove proxy_auth_file`)
		}
		return
	}
	p := *u.Proxy
	p.AuthFile, p.Authorization = "", ""
	if f := *fu.ProxyAuthFile; f != "" {
		p.AuthFile = resolvePath(b.dir, f)
		auth, err := readProxyAuth(p.AuthFile)
		if err != nil {
			b.add(key+".proxy_auth_file", ErrInvalid, "%q: %v", f, err)
			return
		}
		p.Authorization = auth
	}
	u.Proxy = &p
}

// proxyURL parses a proxy value: "direct" or "" (nil: no parent) or
// "http://host:port".
func (b *builder) proxyURL(key, s string) *ParentProxy {
	const want = `want "http://host:port", e.g. proxy = "http://proxy.corp.example:8080", or "direct"`
	if s == "direct" || s == "" {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		b.add(key, ErrInvalid, "%q is not a proxy URL (%s)", redactURL(s), want)
	case u.User != nil:
		// Credentials in a URL end up in logs, ps and shell history.
		b.add(key, ErrInvalid, "%q carries credentials in the URL; put user:password in a file readable only by tlsbridge's user and name it in proxy_auth_file", redactURL(s))
	case u.Scheme != "http":
		b.add(key, ErrInvalid, "%q: scheme %q is not supported (%s; tlsbridge speaks plain HTTP CONNECT to the parent, its own TLS runs inside the tunnel)", s, u.Scheme, want)
	case u.Port() == "":
		b.add(key, ErrInvalid, "%q has no port (%s)", s, want)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		b.add(key, ErrInvalid, "%q has a path, query or fragment (%s)", s, want)
	default:
		addr := b.hostPort(key, u.Host, "the parent proxy")
		section, _, _ := strings.Cut(key, ".")
		if section == "upstream" {
			section = "default"
		}
		return &ParentProxy{URL: "http://" + u.Host, Addr: addr, Section: section}
	}
	return nil
}

// redactURL is s with any userinfo replaced, for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
		return s[:i+3] + "xxxxx@" + s[j+1:]
	}
	return s
}

// readProxyAuth reads proxy_auth_file: user:password on its first
// non-empty line, from a file only its owner may read (like the CA key).
// It returns the Proxy-Authorization value, Basic (RFC 7617).
func readProxyAuth(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > 4096 {
		return "", fmt.Errorf("%s is %d bytes; want one line user:password", path, fi.Size())
	}
	if err := ca.CheckSecretFile("proxy credentials", path); err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			line = l
			break
		}
	}
	user, pass, ok := strings.Cut(line, ":")
	switch {
	case !ok || user == "":
		return "", errors.New("want user:password on one line")
	case strings.ContainsAny(line, "\x00\r") || strings.IndexFunc(line, unicode.IsControl) >= 0:
		return "", errors.New("control characters in user:password")
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
}

// clientCert parses client_cert and client_key, which are set together
// in one section (or both "" to present none where a certificate is
// inherited); the files are read and checked now, and again on a reload.
func (b *builder) clientCert(key string, fu fileUpstream, u *UpstreamTLS) {
	cert, keyf := fu.ClientCert, fu.ClientKey
	switch {
	case cert == nil && keyf == nil:
		return
	case cert == nil:
		b.add(key+".client_key", ErrInvalid, "set without client_cert; set both (PEM files: the certificate, and its private key)")
		return
	case keyf == nil:
		b.add(key+".client_cert", ErrInvalid, "set without client_key; set both (PEM files: the certificate, and its private key)")
		return
	case *cert == "" && *keyf == "":
		u.ClientCert, u.ClientCertFile, u.ClientKeyFile = nil, "", ""
		return
	case *cert == "" || *keyf == "":
		b.add(key+".client_cert", ErrInvalid, "client_cert and client_key must both name a file, or both be \"\" (no client certificate)")
		return
	}
	cf, kf := resolvePath(b.dir, *cert), resolvePath(b.dir, *keyf)
	c, err := ca.LoadClientCertificate(cf, kf)
	if err != nil {
		at := key + ".client_cert"
		var pe *ca.PermissionError
		if errors.As(err, &pe) || exists(cf) && !exists(kf) {
			at = key + ".client_key"
		}
		b.add(at, ErrInvalid, "%v", err)
		return
	}
	u.ClientCert, u.ClientCertFile, u.ClientKeyFile = c, cf, kf
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
