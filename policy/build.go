package policy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/tlsbridge/tlsbridge/ca"
)

// build turns a validated fileConfig into a Policy: versions parsed, globs
// compiled, paths made absolute and root pools assembled from the ca_files
// certificates validate read (val.certs). validate has rejected every bad
// value, so the errors build collects (builder.check) mean a bug.
func build(fc *fileConfig, path string, val *validated) (*Policy, error) {
	b := &builder{dir: baseDir(path), certs: val.certs, pools: make(map[string]*x509.CertPool)}
	p := &Policy{
		Path:         path,
		Listen:       fc.Listen,
		ConnectPorts: append([]int(nil), fc.ConnectPorts...),
		CA:           CAConfig{},
		Log:          LogConfig{Format: fc.Log.Format, Level: fc.Log.Level},
		Admin:        AdminConfig{Listen: fc.Admin.Listen},
		Limits:       buildLimits(fc.Limits),
	}
	if fc.Auth.UsersFile != "" {
		p.Auth = Auth{UsersFile: resolvePath(b.dir, fc.Auth.UsersFile), Realm: fc.Auth.Realm, Users: val.users}
		if p.Auth.Realm == "" {
			p.Auth.Realm = "tlsbridge"
		}
	}
	if fc.CA.Dir != "" {
		p.CA.Dir = resolvePath(b.dir, fc.CA.Dir)
	}
	p.CA.LeafKey, _ = parseLeafKey(fc.CA.LeafKey)
	for _, h := range fc.CA.PermittedHosts {
		n, err := ca.ParsePermittedHost(h)
		b.check(err)
		p.CA.PermittedHosts = append(p.CA.PermittedHosts, n)
	}
	for _, c := range fc.AllowClients {
		pfx, err := parseClientPrefix(c)
		b.check(err)
		p.AllowClients = append(p.AllowClients, pfx)
	}
	p.Client = b.client(fc.Client)
	p.Upstream = b.upstream(fileUpstreamOverride{fileUpstream: fc.Upstream})
	p.Default = &Rule{Name: "default", Action: ActionAuto, Client: p.Client, Upstream: p.Upstream}

	for i, fr := range fc.Rules {
		r := &Rule{
			Name:     fmt.Sprintf("rule[%d]", i),
			Ports:    append([]int(nil), fr.Ports...),
			Client:   b.client(mergeClient(fc.Client, fr.Client)),
			Upstream: b.upstream(mergeUpstream(fc.Upstream, fr.Upstream)),
		}
		if fr.Hosts != nil {
			r.Hosts = append([]string(nil), *fr.Hosts...)
		}
		var err error
		r.match, err = compileHosts(r.Hosts)
		b.check(err)
		if fr.Action != nil {
			b.check(r.Action.UnmarshalText([]byte(*fr.Action)))
		}
		p.Rules = append(p.Rules, r)
	}

	for i, fl := range fc.Listeners {
		l := &Listener{
			Name:        fmt.Sprintf("listener[%d]", i),
			Client:      b.client(mergeClient(fc.Client, fl.Client)),
			UpstreamTLS: b.upstream(mergeUpstream(fc.Upstream, fl.UpstreamSettings)),
		}
		if fl.Listen != nil {
			l.Listen = *fl.Listen
		}
		if fl.ClientTLS != nil {
			l.ClientTLS = *fl.ClientTLS
		}
		if fl.UpstreamTLS != nil {
			l.PlainUpstream = !*fl.UpstreamTLS
		}
		if fl.ALPN != nil {
			l.ALPN = append([]string(nil), *fl.ALPN...)
		}
		// The target comes from upstream = "host:port", or from address in
		// the [listener.upstream] table form; then it is the dial address
		// too, so UpstreamTLS.Address stays "" (dial the target).
		switch {
		case fl.UpstreamAddr != nil:
			l.Upstream = *fl.UpstreamAddr
		case fl.UpstreamSettings.Address != nil:
			l.Upstream = *fl.UpstreamSettings.Address
			l.UpstreamTLS.Address = ""
		}
		if fl.ServerName != nil && l.UpstreamTLS.ServerName == "" {
			l.UpstreamTLS.ServerName = *fl.ServerName
		}
		p.Listeners = append(p.Listeners, l)
	}
	if err := errors.Join(b.errs...); err != nil {
		return nil, err
	}
	p.warnings = collectWarnings(fc, p)
	return p, nil
}

// builder holds what build shares between sections: the root pools, one
// per distinct ca_files list, so rules that inherit the global list share
// its pool.
type builder struct {
	dir   string
	certs map[string]certFile
	pools map[string]*x509.CertPool // "\x00"-joined absolute paths → pool
	sys   *x509.CertPool
	errs  []error
}

// check records an error that validate should have made impossible.
func (b *builder) check(err error) {
	if err != nil {
		b.errs = append(b.errs, err)
	}
}

func (b *builder) client(fc fileClient) ClientTLS {
	return ClientTLS{MinVersion: b.version(fc.MinTLS), MaxVersion: b.version(fc.MaxTLS)}
}

func (b *builder) version(s *string) uint16 {
	if s == nil {
		b.check(errors.New("missing TLS version"))
		return 0
	}
	v, err := ParseTLSVersion(*s)
	b.check(err)
	return v
}

func (b *builder) upstream(fu fileUpstreamOverride) UpstreamTLS {
	u := UpstreamTLS{
		MinVersion: b.version(fu.MinTLS),
		MaxVersion: b.version(fu.MaxTLS),
		Verify:     fu.Verify == nil || *fu.Verify,
	}
	if fu.CAFiles != nil {
		for _, f := range *fu.CAFiles {
			u.CAFiles = append(u.CAFiles, resolvePath(b.dir, f))
		}
	}
	if fu.Address != nil {
		u.Address = *fu.Address
	}
	if fu.ServerName != nil {
		u.ServerName = *fu.ServerName
	}
	u.RootCAs = b.pool(u.CAFiles)
	return u
}

// pool returns the system roots plus the certificates of files.
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
			cf, ok := b.certs[f] // validate read every ca_files entry
			if !ok {
				b.check(fmt.Errorf("ca_files %q was not read by validate", f))
			}
			for _, c := range cf.certs {
				p.AddCert(c)
			}
		}
	}
	b.pools[key] = p
	return p
}
