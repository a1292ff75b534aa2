package bump

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

// snapshot is everything the engine derives from one policy, built whole
// before it is used and never changed after (STYLE 16): the policy, its
// [limits], a ready server-facing tls.Config and a plain-HTTP transport per
// rule, and the leaf key type. SetPolicy builds a new one and swaps
// Server.rt; a connection loads the snapshot once, when it is accepted, and
// keeps it to its end, so it never mixes two configs (a rule of the new one
// with a tls.Config of the old, say).
type snapshot struct {
	pol *policy.Policy
	lim policy.Limits

	// upstream is each rule's server-facing template (Rules and Default),
	// built once so its client session cache is shared by the rule's
	// connections: a reconnecting app's upstream handshake is resumed.
	upstream map[*policy.Rule]*tls.Config
	// transport forwards plain-HTTP proxy requests (GET http://…, and
	// https:// absolute URIs) for each rule: its address, server_name and
	// roots, like a CONNECT under that rule.
	transport map[*policy.Rule]*http.Transport

	leafKey ca.KeyType // the [ca] leaf_key; policy.LeafKeyAuto (0) for auto

	aia *aiaFetcher // the Server's (its cache outlives snapshots)

	// listeners are the [[listener]] targets by name: a running listener
	// whose settings a reload kept (Equal) dials with the new snapshot's,
	// which carry a renewed client_cert or proxy_auth_file.
	listeners map[string]snapshotListener
}

type snapshotListener struct {
	l *policy.Listener
	t target
}

// newSnapshot derives a snapshot from pol.
func (s *Server) newSnapshot(pol *policy.Policy) *snapshot {
	rt := &snapshot{
		pol:       pol,
		lim:       pol.Limits,
		leafKey:   pol.CA.LeafKey, // policy.LeafKeyAuto is 0
		aia:       s.aia,
		upstream:  make(map[*policy.Rule]*tls.Config, len(pol.Rules)+1),
		transport: make(map[*policy.Rule]*http.Transport, len(pol.Rules)+1),
	}
	rt.listeners = make(map[string]snapshotListener, len(pol.Listeners))
	for _, l := range pol.Listeners {
		rt.listeners[l.Name] = snapshotListener{l: l, t: listenerTarget(l, s.aia)}
	}
	for _, r := range append([]*policy.Rule{pol.Default}, pol.Rules...) {
		rt.upstream[r] = newUpstreamBase(r.Upstream)
		rt.transport[r] = s.newTransport(r, rt.upstream[r], pol.Limits.UpstreamTimeout)
	}
	return rt
}

// upstreamConfig is rule's server-facing template.
func (rt *snapshot) upstreamConfig(rule *policy.Rule) *tls.Config {
	if c, ok := rt.upstream[rule]; ok {
		return c
	}
	return newUpstreamBase(rule.Upstream) // a rule of another snapshot: not shared
}

// retire lets the connections of a replaced snapshot's transports go once
// their requests end.
func (rt *snapshot) retire() {
	for _, t := range rt.transport {
		t.CloseIdleConnections()
	}
}

// handshakeDeadline is when an app that starts its handshake now must be done.
func (rt *snapshot) handshakeDeadline() time.Time {
	return time.Now().Add(rt.lim.HandshakeTimeout)
}

// SetPolicy applies a new policy to new connections: it builds the whole
// snapshot (rules, limits, upstream configs and transports, leaf key) and
// swaps it in at once. Connections in flight finish under the snapshot
// they started with. The proxy's listen address and the [[listener]] ports
// are the caller's to reopen.
func (s *Server) SetPolicy(p *policy.Policy) {
	if p == nil {
		panic("bump: SetPolicy(nil)")
	}
	// The engines first: a session_lifetime of "0s" stops every
	// resumption before any connection runs under the new snapshot.
	if err := s.applySessions(p.Limits); err != nil {
		s.log.WithError(err).Error("session tickets keep their old key schedule")
	}
	if old := s.rt.Swap(s.newSnapshot(p)); old != nil {
		old.retire()
	}
}

// applySessions sets [limits] session_lifetime in both engines
// (crypto/tls's ticket key rotation, whose tickets a snapshot with a
// lifetime of 0 turns off per connection; the legacy engine's session
// timeout, or resumption off) and session_cache_size in the legacy
// engine, the one with a cache.
func (s *Server) applySessions(lim policy.Limits) error {
	if s.legacy != nil {
		s.legacy.setLifetime(lim.SessionLifetime)
		s.legacy.setCacheSize(lim.SessionCacheSize)
	}
	return s.tickets.setLifetime(lim.SessionLifetime)
}

// Policy returns the policy in force for new connections.
func (s *Server) Policy() *policy.Policy { return s.rt.Load().pol }

// leafKeyFor picks the leaf key type for an app's ClientHello: the [ca]
// leaf_key in force, or for "auto" ECDSA (a signature costs 0.03 ms) when
// the app supports it and RSA (0.7 ms) when it does not.
func (rt *snapshot) leafKeyFor(certs *ca.Cache, hi *tls.ClientHelloInfo) ca.KeyType {
	if rt.leafKey != 0 {
		return rt.leafKey
	}
	return certs.KeyTypeFor(hi)
}
