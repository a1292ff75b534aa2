package bump

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/tlsbridge/tlsbridge/policy"
)

// The decide stage: what the proxy does with a CONNECT, from the policy
// alone, before anything is dialled.

// admit decides what the proxy answers a CONNECT to host:port under pol
// before it dials anything: status 0 to go ahead under rule, else the status
// and the reason the app is told. `tlsbridge check` asks it too, so the two
// agree. rule is nil when the port is refused before any rule is matched.
// permits is the CA's name-constraint check: a constrained CA cannot sign
// for a host outside [ca] permitted_hosts, so every action that may
// terminate the app's TLS (bump, and auto, which does for legacy apps) is
// refused with 403 before any handshake; only tunnel passes such a host.
func admit(pol *policy.Policy, host string, port int, permits func(string) error) (rule *policy.Rule, status int, reason string) {
	if !pol.AllowsPort(port) {
		return nil, http.StatusForbidden, fmt.Sprintf("port %d is not in connect_ports %v; add it to connect_ports in the config to allow it", port, pol.ConnectPorts)
	}
	rule = pol.Match(host, port)
	switch rule.Action {
	case policy.ActionDeny:
		return rule, http.StatusForbidden, fmt.Sprintf("%s:%d is denied by %s (hosts %v)", host, port, rule.Name, rule.Hosts)
	case policy.ActionTunnel:
		return rule, 0, ""
	}
	if permits != nil {
		if err := permits(host); err != nil {
			return rule, http.StatusForbidden, err.Error()
		}
	}
	return rule, 0, ""
}

// target is where a connection goes and how, as an entry point supplies it
// to the pipeline: a CONNECT's matched rule and host, a [[listener]]'s
// fixed upstream, the host `check` probes.
type target struct {
	rule *policy.Rule
	host string // the name the app asked for
	port int
	addr string // the address dialled: the rule's address, else host:port
	name string // the name sent as SNI and verified: server_name, else host
	// tls is the server-facing template (see newUpstreamBase); nil for a
	// plain TCP upstream (a listener with upstream_tls = false).
	tls *tls.Config
	// aia completes incomplete chains when the rule sets
	// fetch_intermediates (see aia.go); nil never fetches.
	aia *aiaFetcher
}

// target is the destination of a CONNECT to host:port under rule.
func (rt *snapshot) target(rule *policy.Rule, host string, port int) target {
	addr, name := upstreamTarget(rule, host, port)
	return target{rule: rule, host: host, port: port, addr: addr, name: name, tls: rt.upstreamConfig(rule), aia: rt.aia}
}

// upstreamTarget is the address dialled and the name verified for a
// CONNECT to host:port under rule: its address and server_name, else the
// target itself.
func upstreamTarget(rule *policy.Rule, host string, port int) (addr, name string) {
	addr = rule.Upstream.Address
	if addr == "" {
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	name = rule.Upstream.ServerName
	if name == "" {
		name = host
	}
	return addr, name
}

// parent is the parent proxy t is reached through, nil for a direct
// connection.
func (t target) parent() *policy.ParentProxy { return ruleParent(t.rule) }

// ruleParent is rule's parent proxy, nil for none (or no rule).
func ruleParent(rule *policy.Rule) *policy.ParentProxy {
	if rule == nil {
		return nil
	}
	return rule.Upstream.Proxy
}

// failed is the error of a failed stage towards t, with what the 502 that
// explains it needs.
func (t target) failed(stage string, err error) *upstreamError {
	ue := &upstreamError{stage: stage, host: t.host, addr: t.addr, name: t.name, rule: t.rule, err: err}
	if stage == "handshake" && t.tls != nil {
		ue.offers = [2]uint16{t.tls.MinVersion, t.tls.MaxVersion}
	}
	return ue
}
