package policy

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// Warning is a setting that tlsbridge accepts but that gives away part of
// what it protects. `tlsbridge run` logs each at Warn on start and on every
// reload.
type Warning struct {
	File string // config file path; "" when parsing bytes without a path
	Key  string // dotted key with array indexes, e.g. "rule[0].upstream.min_tls"
	Msg  string // what the setting exposes and the change that removes the warning
}

// String formats the warning like a [KeyError]: "file: key: msg".
func (w Warning) String() string {
	return (&KeyError{File: w.File, Key: w.Key, Msg: w.Msg}).Error()
}

// Warnings returns, in file order, the settings that weaken tlsbridge:
//
//   - a non-loopback listen (of the proxy or of a [[listener]]) with an
//     allow_clients entry that admits every address (0.0.0.0/0 or ::/0):
//     an open proxy, or an open tunnel, for everyone who can reach the port;
//   - verify = false in [upstream], a [rule.upstream] or a
//     [listener.upstream];
//   - an upstream min_tls below 1.2 there.
//
// Each names the key that sets it; a value that rules and listeners
// inherit is reported once, at [upstream]. Rules whose action never opens
// TLS to the server (tunnel, deny) are left out. A config without such
// settings has none.
func (p *Policy) Warnings() []Warning { return slices.Clone(p.warnings) }

// weakUpstream is what an upstream section writes itself that Warnings
// reports: verify = false, and a min_tls (0 when the section inherits it).
type weakUpstream struct {
	verifyOff bool
	minTLS    uint16
}

// warnings finds the settings Warnings reports in a policy built without
// problems, from its parsed values and b.weak (which section writes what).
func (b *builder) warnings(fc *fileConfig, p *Policy) []Warning {
	w := &warner{file: p.Path}
	for i, pfx := range p.AllowClients {
		if pfx.Bits() != 0 {
			continue
		}
		key, entry := fmt.Sprintf("allow_clients[%d]", i), fc.AllowClients[i]
		if !isLoopbackListen(p.Listen) {
			w.add(key, "%q admits every address while listen = %q: tlsbridge is an open proxy for everyone who can reach that port; list only your apps' networks, e.g. allow_clients = [\"10.0.0.0/8\"]", entry, p.Listen)
		}
		for _, l := range p.Listeners {
			if !isLoopbackListen(l.Listen) {
				w.add(key, "%q admits every address while %s.listen = %q: everyone who can reach that port gets a tunnel to %s; list only your apps' networks, e.g. allow_clients = [\"10.0.0.0/8\"]", entry, l.Name, l.Listen, l.Upstream)
			}
		}
	}

	w.upstream("upstream", b.weak["upstream"], "the servers of every rule and listener that does not set it", `set it to "1.2" and lower it only in the [rule.upstream] of a server that cannot do better`)
	const later = `remove it once the server supports TLS 1.2`
	for _, r := range p.Rules {
		if r.Action == ActionTunnel || r.Action == ActionDeny {
			continue // never speaks TLS to the server
		}
		w.upstream(r.Name+".upstream", b.weak[r.Name+".upstream"], fmt.Sprintf("the hosts of %s (%s)", r.Name, strings.Join(r.Hosts, ", ")), later)
	}
	for _, l := range p.Listeners {
		if l.PlainUpstream {
			continue // upstream_tls = false: no TLS to the server
		}
		w.upstream(l.Name+".upstream", b.weak[l.Name+".upstream"], fmt.Sprintf("%s's server %s", l.Name, l.Upstream), later)
	}
	return w.list
}

type warner struct {
	file string
	list []Warning
}

func (w *warner) add(key, format string, args ...any) {
	w.list = append(w.list, Warning{File: w.file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// upstream reports the keys of one upstream section that weaken it: set
// holds what the section writes itself, where names the servers they
// apply to, raise says how to get min_tls back to 1.2.
func (w *warner) upstream(key string, set weakUpstream, where, raise string) {
	if set.verifyOff {
		w.add(key+".verify", "false: the certificates of %s are NOT verified, so anyone on the network path can impersonate them; remove it (and list the server's CA in ca_files if it is private)", where)
	}
	if set.minTLS != 0 && set.minTLS < tls.VersionTLS12 {
		v := TLSVersionName(set.minTLS)
		w.add(key+".min_tls", "%q lets tlsbridge speak TLS %s to %s, the outdated TLS it exists to keep away from servers; %s", v, v, where, raise)
	}
}
