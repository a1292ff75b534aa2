package bump

import (
	"crypto/tls"
	"errors"
	"io"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// The peek and terminate stages: the app's ClientHello, read before
// anything is decided about it, and the app-facing handshake with a leaf
// minted for the name the app asked for.

// peek reads the app's ClientHello within the handshake timeout and notes
// what it offered, for the access line and the metrics.
func (ss *session) peek() (*clientHello, error) {
	ss.client.SetDeadline(ss.rt.handshakeDeadline())
	hello, err := peekClientHello(ss.ctx(), ss.client)
	ss.client.SetDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	ss.ci.sni = hello.info.ServerName
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
// A failure is logged with its hint.
func (ss *session) terminate(hello *clientHello, c policy.ClientTLS, protos []string, leaf string) (*tls.Conn, bool) {
	s, ci := ss.s, ss.ci
	cfg := appFacingConfig(s.appBase, c, protos, func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := leaf
		if name == "" {
			name = hi.ServerName
		}
		if name == "" {
			name = ci.host
		}
		return s.cfg.Certs.Get(name, ss.rt.leafKeyFor(s.cfg.Certs, hi))
	})
	ss.client.SetDeadline(ss.rt.handshakeDeadline())
	app := hello.serve(ss.client, cfg)
	if err := app.HandshakeContext(ss.ctx()); err != nil {
		ss.warnClient(err, hello)
		return nil, false
	}
	ss.client.SetDeadline(time.Time{})
	cs := app.ConnectionState()
	ci.clientTLS, ci.clientCipher, ci.alpn = cs.Version, cs.CipherSuite, cs.NegotiatedProtocol
	return app, true
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
