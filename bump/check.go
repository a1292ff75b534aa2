package bump

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// CheckReport is what `tlsbridge check` found out about one upstream, by
// connecting to it the way the proxy would.
type CheckReport struct {
	Host       string
	Port       int
	Rule       *policy.Rule // nil when the port is refused before any rule
	Addr       string       // the address dialled
	ServerName string       // the verification name

	// Status is the proxy's answer to the CONNECT when it refuses it
	// without dialling (403: deny, connect_ports, permitted_hosts), with
	// Reason, the text the app is sent; 0 when the proxy goes ahead.
	Status int
	Reason string

	// Versions maps each TLS version to whether the server accepted it
	// (a handshake that reached certificate verification counts).
	Versions map[uint16]bool
	// Suites lists which of tlsbridge's upstream TLS 1.2 suites the server
	// accepts.
	Suites []uint16
	// Chain is the server's certificate chain as sent.
	Chain []*x509.Certificate
	// VerifyErr is the verification failure with the rule's roots, if any.
	VerifyErr error
	// Err is the failure a legacy app would see through the proxy.
	Err error
	// Negotiated is the version the proxy would use upstream.
	Negotiated uint16
	// ClientCertAsked reports that the server asked for a client
	// certificate, ClientCertSent that tlsbridge presented client_cert;
	// whether it was accepted is Err (a rejection is a *clientCertError).
	ClientCertAsked, ClientCertSent bool
}

// tunnelled reports whether a TLS 1.0 app's connection would be tunnelled
// untouched: action tunnel, or auto when the upstream minimum is TLS 1.0.
func (r *CheckReport) tunnelled() bool {
	return r.Rule.Action == policy.ActionTunnel ||
		r.Rule.Action == policy.ActionAuto && r.Rule.Upstream.MinVersion <= tls.VersionTLS10
}

// LegacyOK reports whether a TLS 1.0 app would get through the proxy: the
// CONNECT is not refused, and the server is reached and accepts the app
// (a tunnelled app needs the server to speak TLS 1.0 itself).
func (r *CheckReport) LegacyOK() bool {
	switch {
	case r.Status != 0:
		return false
	case r.tunnelled():
		return !r.dialFailed() && r.Versions[tls.VersionTLS10]
	}
	return r.Err == nil
}

// dialFailed reports that the server could not be reached at all.
func (r *CheckReport) dialFailed() bool {
	var ue *upstreamError
	return errors.As(r.Err, &ue) && ue.stage == "dial"
}

// CheckOptions are the optional inputs of Check.
type CheckOptions struct {
	// Dial opens TCP connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Permits is the name-constraint check of the CA the proxy uses
	// ((*ca.Authority).Permits); nil means an unconstrained CA.
	Permits func(host string) error
}

// Check connects to host:port as the proxy would for a legacy app under pol:
// it probes each TLS version and tlsbridge's TLS 1.2 suites, fetches the
// chain and verifies it with the rule's roots. dial may be nil. It is
// CheckWith without a CA: permitted_hosts is not checked.
func Check(ctx context.Context, pol *policy.Policy, host string, port int, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *CheckReport {
	return CheckWith(ctx, pol, host, port, CheckOptions{Dial: dial})
}

// CheckWith is Check with options. A CONNECT the proxy would refuse before
// dialling (see admit: deny, connect_ports, permitted_hosts) is reported as
// such, with the proxy's status and reason, and nothing is dialled.
func CheckWith(ctx context.Context, pol *policy.Policy, host string, port int, opts CheckOptions) *CheckReport {
	r := &CheckReport{Host: host, Port: port, Versions: map[uint16]bool{}}
	r.Rule, r.Status, r.Reason = admit(pol, host, port, opts.Permits)
	if r.Status != 0 {
		if r.Rule != nil {
			r.Addr, r.ServerName = upstreamTarget(r.Rule, host, port)
		}
		return r
	}
	rule, dial := r.Rule, dialFunc(opts.Dial)
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	// The proxy's target, dial and handshake (dial.go), bounded by the
	// same [limits] upstream_timeout.
	t := target{rule: rule, host: host, port: port, tls: newUpstreamBase(rule.Upstream), aia: newAIAFetcher(dial, nil, nil)}
	t.addr, t.name = upstreamTarget(rule, host, port)
	r.Addr, r.ServerName = t.addr, t.name
	var auth clientAuth
	probeLate := true // the first handshake only: what the proxy would get
	handshake := func(minV, maxV uint16, suites []uint16) (*tls.ConnectionState, error) {
		cfg := t.tls.Clone()
		cfg.MinVersion, cfg.MaxVersion = minV, maxV
		if suites != nil {
			cfg.CipherSuites = suites
		}
		cctx, cancel := context.WithTimeout(ctx, pol.Limits.UpstreamTimeout)
		defer cancel()
		raw, err := dialTarget(cctx, dial, t)
		if err != nil {
			return nil, err
		}
		auth = clientAuth{}
		tc, err := handshakeTargetAuth(cctx, raw, t, cfg, nil, &auth)
		if err != nil {
			return nil, err
		}
		defer tc.Close()
		cs := tc.ConnectionState()
		if probeLate && auth.asked && cs.Version == tls.VersionTLS13 {
			// A TLS 1.3 server judges the client certificate after the
			// client's Finished: its verdict is the first record read
			// (session tickets, or an alert). Nothing is sent, so a
			// server that is happy stays silent until the deadline.
			tc.SetReadDeadline(time.Now().Add(lateAlertWait))
			if _, rerr := tc.Read(make([]byte, 1)); rerr != nil {
				if ce, ok := lateClientCertFailure(t, tc, rerr); ok {
					return &cs, t.failed("handshake", ce)
				}
			}
		}
		return &cs, nil
	}
	accepted := func(cs *tls.ConnectionState, err error) bool {
		// A verification failure, or a server judging the client
		// certificate, means the version was accepted.
		var ve *tls.CertificateVerificationError
		var ce *clientCertError
		return err == nil || errors.As(err, &ve) || errors.As(err, &ce)
	}

	// What the proxy would do, exactly: the rule's versions and roots.
	cs, err := handshake(rule.Upstream.MinVersion, rule.Upstream.MaxVersion, nil)
	r.Err = err
	r.ClientCertAsked, r.ClientCertSent = auth.asked, auth.sent
	probeLate = false
	if cs != nil {
		r.Negotiated = cs.Version
		r.Chain = cs.PeerCertificates
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		r.VerifyErr = ve
		r.Chain = ve.UnverifiedCertificates
	}
	var ue *upstreamError
	if errors.As(err, &ue) && ue.stage == "dial" {
		return r
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		r.Versions[v] = accepted(handshake(v, v, nil))
	}
	if r.Versions[tls.VersionTLS12] {
		for _, s := range upstreamCipherSuites {
			if accepted(handshake(tls.VersionTLS12, tls.VersionTLS12, []uint16{s})) {
				r.Suites = append(r.Suites, s)
			}
		}
	}
	return r
}

// WriteTo prints the report for a person.
func (r *CheckReport) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "target      %s:%d\n", r.Host, r.Port)
	if r.Rule == nil {
		fmt.Fprintf(&b, "\na TLS 1.0 app would be refused with %d: %s\n", r.Status, r.Reason)
		n, err := io.WriteString(w, b.String())
		return int64(n), err
	}
	fmt.Fprintf(&b, "rule        %s, action %s", r.Rule.Name, r.Rule.Action)
	if len(r.Rule.Hosts) > 0 {
		fmt.Fprintf(&b, " (hosts %s)", strings.Join(r.Rule.Hosts, ", "))
	}
	fmt.Fprintf(&b, "\nupstream    dial %s, verify as %q, TLS %s–%s, verification %s\n", r.Addr, r.ServerName,
		policy.TLSVersionName(r.Rule.Upstream.MinVersion), policy.TLSVersionName(r.Rule.Upstream.MaxVersion), onOff(r.Rule.Upstream.Verify))
	if p := r.Rule.Upstream.Proxy; p != nil {
		auth := "without credentials"
		if p.Authorization != "" {
			auth = "with the credentials of " + p.AuthFile
		}
		fmt.Fprintf(&b, "parent      through %s (HTTP CONNECT), %s\n", p, auth)
	}
	if r.Status == 0 && len(r.Versions)+len(r.Chain) > 0 || r.ClientCertAsked {
		b.WriteString(r.clientCertLine())
	}
	if len(r.Versions) > 0 {
		var vs []string
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
			vs = append(vs, fmt.Sprintf("TLS %s %s", policy.TLSVersionName(v), yesNo(r.Versions[v])))
		}
		fmt.Fprintf(&b, "versions    %s\n", strings.Join(vs, "   "))
	}
	if len(r.Suites) > 0 {
		b.WriteString("TLS 1.2 suites accepted:\n")
		for _, s := range r.Suites {
			fmt.Fprintf(&b, "            %s\n", tls.CipherSuiteName(s))
		}
	}
	if len(r.Chain) > 0 {
		b.WriteString("certificate chain:\n")
		for i, c := range r.Chain {
			fmt.Fprintf(&b, "  %d subject %s\n    issuer  %s\n    expires %s", i, c.Subject, c.Issuer, c.NotAfter.UTC().Format(time.DateOnly))
			if names := certNames(c); names != "" {
				fmt.Fprintf(&b, "\n    names   %s", names)
			}
			b.WriteString("\n")
		}
	}
	switch {
	case r.VerifyErr != nil:
		fmt.Fprintf(&b, "verify      FAILED with the configured roots: %v\n", r.VerifyErr)
	case len(r.Chain) > 0:
		b.WriteString("verify      ok with the configured roots\n")
	}
	b.WriteString("\n")
	switch {
	case r.Status != 0:
		fmt.Fprintf(&b, "a TLS 1.0 app would be refused with %d: %s\n", r.Status, r.Reason)
	case r.tunnelled() && r.dialFailed():
		v := classify(r.Err, nil, 0)
		fmt.Fprintf(&b, "a TLS 1.0 app would get %d on its CONNECT:\n  %s\n  fix: %s\n", v.status, v.cause, v.fix)
	case r.tunnelled():
		b.WriteString("a TLS 1.0 app would be tunnelled untouched and needs the server to accept TLS 1.0 itself")
		fmt.Fprintf(&b, " (it %s)\n", map[bool]string{true: "does", false: "does not"}[r.Versions[tls.VersionTLS10]])
	case r.Err == nil:
		fmt.Fprintf(&b, "a TLS 1.0 app would be bumped and succeed: upstream TLS %s\n", policy.TLSVersionName(r.Negotiated))
	default:
		var ue *upstreamError
		if errors.As(r.Err, &ue) {
			v := ue.verdict()
			status, cause, fix := v.status, v.cause, v.fix
			where := "inside its TLS connection"
			if ue.stage == "dial" && r.Rule.Action == policy.ActionAuto {
				where = "on its CONNECT" // auto dials before answering 200
			}
			fmt.Fprintf(&b, "a TLS 1.0 app would get %d %s:\n  %s\n  fix: %s\n", status, where, cause, fix)
		} else {
			fmt.Fprintf(&b, "a TLS 1.0 app would fail: %v\n", r.Err)
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// lateAlertWait is how long check waits for a TLS 1.3 server's verdict on
// the client certificate.
const lateAlertWait = time.Second

// clientCertLine says whether the server asked for a client certificate
// and what became of tlsbridge's.
func (r *CheckReport) clientCertLine() string {
	u := r.Rule.Upstream
	var ce *clientCertError
	rejected := errors.As(r.Err, &ce)
	switch {
	case !r.ClientCertAsked && u.ClientCert != nil:
		return fmt.Sprintf("client cert not asked for by the server (client_cert %s unused)\n", u.ClientCertFile)
	case !r.ClientCertAsked:
		return "client cert not asked for by the server\n"
	case !r.ClientCertSent && rejected:
		return "client cert asked for by the server and REQUIRED; tlsbridge has none (client_cert not set)\n"
	case !r.ClientCertSent:
		return "client cert asked for by the server (optional: it accepted the connection without one); client_cert not set\n"
	case rejected:
		return fmt.Sprintf("client cert asked for; tlsbridge presented %s (subject %q): REJECTED\n", u.ClientCertFile, u.ClientCert.Leaf.Subject.String())
	}
	return fmt.Sprintf("client cert asked for; tlsbridge presented %s (subject %q): accepted\n", u.ClientCertFile, u.ClientCert.Leaf.Subject.String())
}

func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return strings.Join(names, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "OFF"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
