package bump

import (
	"crypto/tls"
	"errors"
	"io"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// The peek and terminate stages: the app's ClientHello, read before
// anything is decided about it, and the app-facing handshake with a leaf
// minted for the name the app asked for.

// peek reads the app's ClientHello within the handshake timeout and notes
// what it offered, for the access line and the metrics.
func (ss *session) peek() (*clientHello, error) {
	deadline := ss.rt.handshakeDeadline()
	ss.client.SetDeadline(deadline)
	hello, err := peekClientHello(ss.ctx(), ss.client)
	ss.client.SetDeadline(time.Time{})
	var he *helloError
	if errors.Is(err, errSSLv2Hello) && ss.s.legacy != nil && errors.As(err, &he) {
		hello, err = readSSLv2Hello(ss.client, he.recorded, deadline)
	}
	if err != nil {
		return nil, err
	}
	ss.ci.sni, ss.ci.sslv2Hello = hello.info.ServerName, hello.sslv2
	lo, hi := offeredRange(hello.info.SupportedVersions)
	ss.ci.clientOffered = versionName(lo) + "-" + versionName(hi)
	ss.ci.clientMax = hi
	ss.s.metrics.hello(hi)
	return hello, nil
}

// servable refuses, with the alert crypto/tls would send, a hello that no
// app-facing config accepts or that c (the client table of name, a rule or
// listener) excludes, before an upstream is dialled for it.
func (ss *session) servable(hello *clientHello, c policy.ClientTLS, name string) bool {
	if err := hello.servable(c, name); err != nil {
		hello.refuse(ss.client, err)
		ss.warnClient(err, hello)
		return false
	}
	return true
}

// terminate completes the app-facing handshake over the peeked hello,
// offering protos (ALPN), with a leaf for leaf, or when leaf is "" for the
// SNI the app sent (the CONNECT host when it sent none, or an IP literal).
// The engine is crypto/tls, or the legacy engine for the hellos it takes
// (engine.go). A failure is logged with its hint.
func (ss *session) terminate(hello *clientHello, c policy.ClientTLS, protos []string, leaf string) (appTLS, bool) {
	s, ci := ss.s, ss.ci
	leafName := func(sni string) string {
		switch {
		case leaf != "":
			return leaf
		case sni != "":
			return sni
		}
		return ci.host
	}
	ss.client.SetDeadline(ss.rt.handshakeDeadline())
	var (
		app appTLS
		st  appState
		err error
	)
	if s.legacy != nil && legacyTakes(hello, s.legacy.suites()) {
		app, st, err = ss.terminateLegacy(hello, c, protos, leafName(hello.info.ServerName))
	} else {
		cfg := appFacingConfig(s.appBase, c, ss.rt.lim, protos, func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cfg.Certs.Get(leafName(hi.ServerName), ss.rt.leafKeyFor(s.cfg.Certs, hi))
		})
		tc := hello.serve(ss.client, cfg)
		if err = tc.HandshakeContext(ss.ctx()); err == nil {
			cs := tc.ConnectionState()
			app, st = tc, appState{version: cs.Version, cipher: cs.CipherSuite, alpn: cs.NegotiatedProtocol, resumed: cs.DidResume, engine: "go"}
		}
	}
	if err != nil {
		ss.warnClient(err, hello)
		return nil, false
	}
	ss.client.SetDeadline(time.Time{})
	ci.clientTLS, ci.clientCipher, ci.alpn, ci.clientResumed = st.version, st.cipher, st.alpn, st.resumed
	s.metrics.appHandshake(st)
	return app, true
}

// terminateLegacy runs the app's handshake on the legacy engine with the
// leaf for name: an RSA leaf for an SSLv2-format hello (whose apps predate
// ECDSA), else the one crypto/tls would have chosen.
func (ss *session) terminateLegacy(hello *clientHello, c policy.ClientTLS, protos []string, name string) (appTLS, appState, error) {
	kt := ss.rt.leafKey
	switch {
	case kt != 0:
	case hello.sslv2:
		kt = ca.KeyRSA2048
	default:
		kt = ss.s.cfg.Certs.KeyTypeFor(hello.info)
	}
	cert, err := ss.s.cfg.Certs.Get(name, kt)
	if err != nil {
		return nil, appState{}, err
	}
	return ss.s.legacy.handshake(ss.ctx(), &replayConn{Conn: ss.client, pending: hello.recorded}, legacyConfig{
		minVersion: c.MinVersion, maxVersion: c.MaxVersion, cert: cert, protos: protos,
		sessionContext: sessionContext(ss.s.cfg.Certs.Authority().CertDER(), name),
	})
}

// warnClient logs a failed app-facing handshake with a hint for known
// causes. An app that closes before sending a ClientHello (a port probe, a
// client giving up) is only noted at Info; one that closes after it failed
// its handshake, which deserves a warning and a hint like any other.
func (ss *session) warnClient(err error, hello *clientHello) {
	v := classify(err, hello, ss.rt.leafKey)
	ss.s.metrics.failed(ss.ci, sideApp, v)
	e := ss.s.log.WithFields(ss.fields()).WithError(err)
	if v.hint != "" {
		e = e.WithField(logfield.Hint, v.hint)
	}
	switch {
	case hello == nil && errors.Is(err, io.EOF):
		e.Info("app closed the connection before its TLS handshake")
	case appClosed(err):
		e.Warn("app closed the connection during its TLS handshake")
	default:
		e.Warn("app-facing TLS handshake failed")
	}
}
