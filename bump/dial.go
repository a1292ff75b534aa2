package bump

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"strings"
)

// The dial stage: the upstream connection of a session, taken from the
// pool or dialled, and its verified TLS handshake. `check` dials through
// the same two functions (dialTarget, handshakeTarget).

// dialFunc opens a TCP connection (Config.Dial, or check's dialer).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialTarget opens the TCP connection to t within ctx; a failure is an
// *upstreamError naming the host, the address and the name to verify.
// With a parent proxy ([upstream] proxy) the connection is a CONNECT
// tunnel through it (connectParent): the one place the parent is used, so
// tunnels, bumps, listeners and check all reach the server the same way.
func dialTarget(ctx context.Context, dial dialFunc, t target) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	if p := t.parent(); p != nil {
		c, err = connectParent(ctx, dial, p, t.addr)
	} else {
		c, err = dial(ctx, "tcp", t.addr)
	}
	if err != nil {
		return nil, t.failed("dial", err)
	}
	return c, nil
}

// handshakeTarget completes a verified TLS handshake with t over raw,
// offering protos (ALPN), with cfg (t.tls, or a probe's variant of it);
// raw is closed on failure.
func handshakeTarget(ctx context.Context, raw net.Conn, t target, cfg *tls.Config, protos []string) (*tls.Conn, error) {
	return handshakeTargetAuth(ctx, raw, t, cfg, protos, &clientAuth{})
}

// handshakeTargetAuth is handshakeTarget that also reports in auth
// whether the server asked for a client certificate and whether
// client_cert was presented (for check). A server that asked and then
// refused is a *clientCertError.
func handshakeTargetAuth(ctx context.Context, raw net.Conn, t target, cfg *tls.Config, protos []string, auth *clientAuth) (*tls.Conn, error) {
	cfg = cfg.Clone()
	cfg.ServerName = t.name
	cfg.NextProtos = protos
	trackClientAuth(cfg, auth)
	fetch := t.aia != nil && t.rule != nil && t.rule.Upstream.FetchIntermediates && !cfg.InsecureSkipVerify
	if fetch {
		// The verification is verifyConnection's, which does what
		// crypto/tls would (the configured roots, the name t.name, IP
		// literals included) and completes a chain without its
		// intermediate from the leaf's AIA URL; TestFetchIntermediates
		// proves roots and name are still enforced.
		cfg.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyConnection: chain and name verified there
		cfg.VerifyConnection = t.aia.verifyConnection(ctx, t, cfg.RootCAs, t.name, loopbackPeer(raw, t))
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		if !fetch {
			err = noIntermediate(t, err)
		}
		ue := t.failed("handshake", clientCertFailure(t, *auth, err))
		ue.offers = [2]uint16{cfg.MinVersion, cfg.MaxVersion}
		return nil, ue
	}
	return tc, nil
}

// dialTCP opens the TCP connection of a session to t within the upstream
// timeout.
func (ss *session) dialTCP(t target) (net.Conn, error) {
	ss.ci.upstreamAddr = t.addr
	ctx, cancel := context.WithTimeout(ss.ctx(), ss.rt.lim.UpstreamTimeout)
	defer cancel()
	return dialTarget(ctx, ss.s.dial, t)
}

// dialTLS connects to t and completes a verified TLS handshake with the
// rule's versions and roots, over raw when the TCP connection is already
// dialled (auto dials before answering 200). The upstream timeout bounds
// connect and handshake together.
func (ss *session) dialTLS(t target, protos []string, raw net.Conn) (*tls.Conn, error) {
	ss.ci.upstreamAddr = t.addr
	ctx, cancel := context.WithTimeout(ss.ctx(), ss.rt.lim.UpstreamTimeout)
	defer cancel()
	if raw == nil {
		var err error
		if raw, err = dialTarget(ctx, ss.s.dial, t); err != nil {
			return nil, err
		}
	}
	return handshakeTarget(ctx, raw, t, t.tls, protos)
}

// poolKey names the upstream connections a bumped connection may share.
func (ss *session) poolKey(t target) poolKey {
	return poolKey{rule: t.rule, addr: t.addr, name: t.name, user: ss.ci.user}
}

// preDial is the upstream connection an auto CONNECT holds before it answers
// 200: an idle pooled one, which proves the server is there and spares a
// bumped app the upstream handshake, or a new TCP connection. At most one
// is set; whatever the connection does not use is closed.
type preDial struct {
	pooled *tls.Conn
	raw    net.Conn
}

// preDial gets the upstream for an auto CONNECT (see preDial). A failed
// dial is answered on the CONNECT (see connectFailed) and reported false.
func (ss *session) preDial(t target) (preDial, bool) {
	ss.ci.upstreamAddr = t.addr
	if c := ss.s.pool.take(ss.poolKey(t)); c != nil {
		return preDial{pooled: c}, true
	}
	raw, err := ss.dialTCP(t)
	if err != nil {
		ss.connectFailed(err.(*upstreamError))
		return preDial{}, false
	}
	return preDial{raw: raw}, true
}

// takeRaw hands over the TCP connection for a tunnel: nil (dial it then)
// when what is held is a pooled TLS connection, which is closed.
func (p *preDial) takeRaw() net.Conn {
	raw := p.raw
	p.raw = nil
	p.close()
	return raw
}

// close closes whatever was not handed over.
func (p *preDial) close() {
	if p.pooled != nil {
		p.pooled.Close()
		p.pooled = nil
	}
	if p.raw != nil {
		p.raw.Close()
		p.raw = nil
	}
}

// loopbackPeer reports a server dialled at a loopback address (its own
// AIA URL may then be local too; see aia.go): the address reached, or with
// a parent proxy the address asked of it.
func loopbackPeer(raw net.Conn, t target) bool {
	if t.parent() == nil {
		if ra, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
			ip, ok := netip.AddrFromSlice(ra.IP)
			return ok && ip.Unmap().IsLoopback()
		}
		return false
	}
	host, _, _ := net.SplitHostPort(t.addr)
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback() || strings.EqualFold(host, "localhost")
}

// noIntermediate marks an unknown authority for a leaf sent alone that
// names its issuer's URL (AIA): the server's chain is incomplete, which
// fetch_intermediates would complete (the 502 says so).
func noIntermediate(t target, err error) error {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ve) || !errors.As(err, &ua) || len(ve.UnverifiedCertificates) != 1 {
		return err
	}
	u := issuerURL(ve.UnverifiedCertificates[0])
	if u == "" {
		return err
	}
	return &tls.CertificateVerificationError{UnverifiedCertificates: ve.UnverifiedCertificates, Err: &incompleteChainError{url: u, off: true, err: ve.Err}}
}
