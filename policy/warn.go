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

// collectWarnings finds the settings Warnings reports. fc tells which
// section sets a key; p holds the parsed values.
func collectWarnings(fc *fileConfig, p *Policy) []Warning {
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

	w.upstream("upstream", fc.Upstream, "the servers of every rule and listener that does not set it", `set it to "1.2" and lower it only in the [rule.upstream] of a server that cannot do better`)
	const later = `remove it once the server supports TLS 1.2`
	for i, r := range fc.Rules {
		rule := p.Rules[i]
		if rule.Action == ActionTunnel || rule.Action == ActionDeny {
			continue // never speaks TLS to the server
		}
		w.upstream(rule.Name+".upstream", r.Upstream.fileUpstream, fmt.Sprintf("the hosts of %s (%s)", rule.Name, strings.Join(rule.Hosts, ", ")), later)
	}
	for i, l := range fc.Listeners {
		listener := p.Listeners[i]
		if listener.PlainUpstream {
			continue // upstream_tls = false: no TLS to the server
		}
		w.upstream(listener.Name+".upstream", l.UpstreamSettings.fileUpstream, fmt.Sprintf("%s's server %s", listener.Name, listener.Upstream), later)
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
// holds only the keys the section writes, where names the servers they
// apply to, raise says how to get min_tls back to 1.2.
func (w *warner) upstream(key string, set fileUpstream, where, raise string) {
	if set.Verify != nil && !*set.Verify {
		w.add(key+".verify", "false: the certificates of %s are NOT verified, so anyone on the network path can impersonate them; remove it (and list the server's CA in ca_files if it is private)", where)
	}
	if set.MinTLS == nil {
		return
	}
	if v, err := ParseTLSVersion(*set.MinTLS); err == nil && v < tls.VersionTLS12 {
		w.add(key+".min_tls", "%q lets tlsbridge speak TLS %s to %s, the outdated TLS it exists to keep away from servers; %s", *set.MinTLS, *set.MinTLS, where, raise)
	}
}
