package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// The connection pipeline. Every app connection, whichever port it came
// in on, runs the same stages:
//
//	accept → peek → decide → dial → terminate → relay
//
//	accept     guard.go (allow_clients, max_connections), front.go (the
//	           proxy port: TLS to the proxy, the CONNECT head, auth, loops)
//	peek       hello.go: the app's ClientHello, read before anything is decided
//	decide     decide.go: the rule and its action (deny, tunnel, bump, auto)
//	dial       dial.go: the upstream, pooled or new, verified TLS 1.2+
//	terminate  terminate.go: the app-facing handshake with a minted leaf
//	relay      http1relay.go (bumped HTTP/1.x), relay.go (bytes: tunnels,
//	           h2, other protocols)
//
// An entry point supplies only what differs: a CONNECT its target and the
// rule it matched; a [[listener]] its fixed target and its own rule. A
// session is one connection on its way through; it holds the snapshot the
// connection was accepted under, so a reload never changes a connection
// half-way.
type session struct {
	s      *Server
	rt     *snapshot
	ci     *connInfo
	client net.Conn
	listen string // the [[listener]]'s local address, "" on the proxy port
}

// connInfo collects what one connection did, for its access line.
type connInfo struct {
	id             uint64
	start          time.Time
	clientAddr     string
	host           string
	port           int
	rule           string
	action         string
	sni            string
	clientOffered  string
	clientTLS      uint16
	clientCipher   uint16
	upstreamAddr   string
	upstreamTLS    uint16
	upstreamCipher uint16
	alpn           string
	reused         bool       // the upstream connection came from the pool
	user           string     // the authenticated proxy user, if [auth] is on
	clientMax      uint16     // the highest version the app offered in its ClientHello
	clientResumed  bool       // the app's handshake resumed a session (by ID or ticket)
	sslv2Hello     bool       // the app's ClientHello was in SSLv2 format
	app            *appLookup // the app's process, being resolved (appid.go); nil: its user or address
	status         int
	stats          relayStats
}

func (ci *connInfo) fields() logrus.Fields {
	f := logrus.Fields{
		logfield.ConnID:         ci.id,
		logfield.ClientAddr:     ci.clientAddr,
		logfield.Host:           ci.host,
		logfield.Port:           ci.port,
		logfield.Rule:           ci.rule,
		logfield.Action:         ci.action,
		logfield.ClientTLS:      versionName(ci.clientTLS),
		logfield.ClientCipher:   cipherName(ci.clientCipher),
		logfield.UpstreamTLS:    versionName(ci.upstreamTLS),
		logfield.UpstreamCipher: cipherName(ci.upstreamCipher),
		logfield.BytesIn:        ci.stats.in.Load(),
		logfield.BytesOut:       ci.stats.out.Load(),
		logfield.DurationMS:     time.Since(ci.start).Milliseconds(),
	}
	if ci.sni != "" {
		f[logfield.SNI] = ci.sni
	}
	if ci.clientOffered != "" {
		f[logfield.ClientOffered] = ci.clientOffered
	}
	if ci.upstreamAddr != "" {
		f[logfield.UpstreamAddr] = ci.upstreamAddr
	}
	if ci.alpn != "" {
		f[logfield.ALPN] = ci.alpn
	}
	if ci.reused {
		f[logfield.UpstreamReused] = true
	}
	if ci.sslv2Hello {
		f[logfield.ClientHello] = "sslv2"
	}
	if ci.clientCipher != 0 { // the app-facing handshake was tlsbridge's
		f[logfield.ClientResumed] = ci.clientResumed
	}
	if ci.status != 0 {
		f[logfield.Status] = ci.status
	}
	if from, err := ci.stats.failure(); err != nil {
		f[logfield.ClosedBy] = from
		f[logrus.ErrorKey] = err.Error()
	}
	return f
}

// fields are the access-line fields, plus the local address on a listener.
func (ss *session) fields() logrus.Fields {
	f := ss.ci.fields()
	if ss.listen != "" {
		f[logfield.Listen] = ss.listen
	}
	return f
}

// newSession starts the record of one app connection under rt.
func (s *Server) newSession(rt *snapshot, client net.Conn, clientAddr string) *session {
	return &session{s: s, rt: rt, client: client,
		ci: &connInfo{id: s.connID.Add(1), start: time.Now(), clientAddr: clientAddr}}
}

// connectRequest is a CONNECT the front door accepted: its target as
// written, the client's address and the authenticated proxy user.
type connectRequest struct {
	target string
	remote string
	user   string
}

// connect is the proxy port's entry point into the pipeline: it owns client
// (a connection whose CONNECT head has been read) from here on, tracked so
// shutdown can close it.
func (s *Server) connect(rt *snapshot, client net.Conn, req connectRequest) {
	if !s.track(client) {
		client.Close()
		return
	}
	ss := s.newSession(rt, client, req.remote)
	ss.ci.user = req.user
	if req.user == "" {
		ss.ci.app = s.apps.note(client)
	}
	if !ss.serveConnect(req.target) {
		s.release(client)
	}
}

// serveConnect runs the pipeline for one CONNECT and reports whether a
// relay goroutine now owns the client connection.
func (ss *session) serveConnect(hostport string) bool {
	s, ci, client := ss.s, ss.ci, ss.client
	ci.host, ci.port = splitTarget(hostport, -1)
	ci.action = "deny"
	if ci.port < 0 || ci.host == "" {
		ss.refuse(http.StatusBadRequest, fmt.Sprintf("CONNECT target %q is not host:port", hostport))
		return false
	}
	// decide
	rule, status, reason := admit(ss.rt.pol, ci.host, ci.port, s.cfg.Certs.Authority().Permits)
	if rule != nil {
		ci.rule, ci.action = rule.Name, rule.Action.String()
	}
	if status != 0 {
		ss.refuse(status, reason)
		return false
	}
	t := ss.rt.target(rule, ci.host, ci.port)
	var pre preDial // auto: the upstream held before the CONNECT is answered
	defer func() { pre.close() }()
	switch rule.Action {
	case policy.ActionTunnel:
		return ss.tunnel(t, nil, nil)
	case policy.ActionAuto:
		// Both branches of auto need the upstream, and only the app's
		// ClientHello, read after the 200, decides between them: get it
		// first, so a server that is down is answered 502/504 on the
		// CONNECT, which every app reports, rather than with a 200 and a
		// closed connection.
		var ok bool
		if pre, ok = ss.preDial(t); !ok {
			return false
		}
	}
	if _, err := io.WriteString(client, connectEstablished); err != nil {
		return false
	}

	// peek
	hello, err := ss.peek()
	if err != nil {
		var he *helloError
		if errors.As(err, &he) && errors.Is(err, errNotTLS) && rule.Action == policy.ActionAuto {
			// Not TLS (e.g. plain HTTP or a WebSocket through CONNECT):
			// nothing to upgrade, pass it through untouched.
			ci.action = "tunnel"
			return ss.tunnel(t, he.recorded, pre.takeRaw())
		}
		ss.warnClient(err, nil)
		return false
	}
	if rule.Action == policy.ActionAuto {
		// The app can meet the upstream minimum on its own: keep its TLS
		// end to end, untouched.
		if hi := hello.maxOffered(); hi >= rule.Upstream.MinVersion {
			ci.action = "auto-tunnel"
			ci.clientTLS = hi
			return ss.tunnel(t, hello.recorded, pre.takeRaw())
		}
		ci.action = "auto-bump"
	}
	if !ss.servable(hello, rule.Client, rule.Name) {
		return false
	}
	return ss.bump(t, hello, &pre)
}

// connectEstablished answers a CONNECT that tlsbridge takes on.
const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// bump dials the upstream (pooled, held by auto, or new), terminates the
// app's TLS answering with the ALPN protocol the upstream chose (h2 end to
// end), and hands the pair to the relay stage. It reports whether a relay
// goroutine now owns the client connection.
func (ss *session) bump(t target, hello *clientHello, pre *preDial) bool {
	ci := ss.ci
	var upstream *tls.Conn
	var uerr error
	offer := hello.alpn()
	if offersHTTP1(offer) {
		ci.upstreamAddr = t.addr
		if upstream, pre.pooled = pre.pooled, nil; upstream == nil && pre.raw == nil {
			upstream = ss.s.pool.take(ss.poolKey(t))
		}
		ci.reused = upstream != nil
	}
	if upstream == nil {
		raw := pre.raw
		pre.raw = nil
		upstream, uerr = ss.dialTLS(t, offer, raw)
	}
	var protos []string
	switch {
	case uerr == nil && upstream.ConnectionState().NegotiatedProtocol != "":
		protos = []string{upstream.ConnectionState().NegotiatedProtocol}
	case uerr != nil && offersHTTP1(offer) && len(offer) > 0:
		protos = []string{"http/1.1"} // the 502 is HTTP/1.1
	}
	app, ok := ss.terminate(hello, t.rule.Client, protos, "")
	if !ok {
		if upstream != nil {
			upstream.Close()
		}
		return false
	}
	if upstream != nil {
		us := upstream.ConnectionState()
		ci.upstreamTLS, ci.upstreamCipher = us.Version, us.CipherSuite
	}
	ss.handOffBumped(app, upstream, uerr, t)
	return true
}

// offersHTTP1 reports whether an app's ALPN offer allows HTTP/1.1: none at
// all, or http/1.1 among its protocols.
func offersHTTP1(protos []string) bool {
	if len(protos) == 0 {
		return true
	}
	for _, p := range protos {
		if p == "http/1.1" {
			return true
		}
	}
	return false
}

// tunnel relays bytes between the app and the upstream untouched. prefix
// holds bytes already read from the app (a peeked ClientHello). Without
// prefix the CONNECT is answered here: 200 after a successful dial, 502/504
// with the reason otherwise. With prefix it was answered already (auto) and
// upstream is the connection dialled before; if that is nil (auto held a
// pooled TLS connection, unusable for a tunnel) the dial happens now, and a
// failure can only close the app's connection, which the log says. It
// reports whether a relay goroutine now owns the client connection.
func (ss *session) tunnel(t target, prefix []byte, upstream net.Conn) bool {
	ss.client.SetDeadline(time.Time{})
	ss.ci.upstreamAddr = t.addr
	answered := prefix != nil
	if upstream == nil {
		t.name = t.host // a tunnel verifies nothing; the errors name the host
		var err error
		if upstream, err = ss.dialTCP(t); err != nil {
			ue := err.(*upstreamError)
			if !answered {
				ss.connectFailed(ue)
				return false
			}
			ss.upstreamFailed(ue, "upstream failed after the CONNECT was answered 200; the app's connection was closed")
			return false
		}
	}
	if !answered {
		if _, err := io.WriteString(ss.client, connectEstablished); err != nil {
			upstream.Close()
			return false
		}
	}
	if len(prefix) > 0 {
		if _, err := upstream.Write(prefix); err != nil {
			upstream.Close()
			return false
		}
		ss.ci.stats.in.Add(int64(len(prefix)))
	}
	ss.handOff(ss.client, upstream)
	return true
}

// refuse answers a CONNECT with an error status and a plain-text reason.
func (ss *session) refuse(status int, reason string) {
	ss.ci.status = status
	writeResponse(ss.client, status, "tlsbridge: "+reason+"\n")
	ss.s.metrics.access(ss.ci)
	ss.s.log.WithFields(ss.fields()).Info("access: " + reason)
}

// connectFailed answers a CONNECT whose upstream could not be reached with
// the 502 or 504 that says why and how to fix it (squid answers the same
// way), and logs it with that status: the app saw exactly that.
func (ss *session) connectFailed(ue *upstreamError) {
	v := classify(ue, nil, ss.rt.leafKey)
	writeResponse(ss.client, v.status, errorBody(v.status, ss.ci.host, v.cause, v.fix))
	ss.ci.status = v.status
	ss.s.metrics.failed(ss.ci, sideUpstream, v)
	ss.s.log.WithFields(ss.fields()).WithField(logfield.Stage, "upstream-"+ue.stage).WithField(logfield.Hint, v.fix).
		WithError(ue.err).Warnf("upstream failed, CONNECT answered %d: %s", v.status, v.cause)
}

// upstreamFailed logs a failed dial or handshake that the app can only see
// as a closed connection (a byte stream already answered, a listener).
func (ss *session) upstreamFailed(ue *upstreamError, what string) {
	v := classify(ue, nil, ss.rt.leafKey)
	ss.ci.stats.fail(sideUpstream, ue)
	ss.s.metrics.failed(ss.ci, sideUpstream, v)
	ss.s.log.WithFields(ss.fields()).WithField(logfield.Stage, "upstream-"+ue.stage).WithField(logfield.Hint, v.fix).
		WithError(ue.err).Warn(what + ": " + v.cause)
}

// release ends the server's ownership of a proxy-port connection.
func (s *Server) release(client net.Conn) {
	client.Close()
	s.hijacked.done(client)
	s.metrics.active.Dec()
}

// handOff relays between app and upstream in a goroutine of its own and
// returns, so the goroutine that read the CONNECT ends and its stack, grown
// by two TLS handshakes, is freed while the connection idles. The relay
// goroutine releases the client connection and writes the access line.
func (ss *session) handOff(app, upstream net.Conn) {
	go func() {
		defer ss.s.release(ss.client)
		ss.relayLogged(app, upstream)
	}()
}

// relayLogged relays app and upstream until both end, then writes the
// connection's access line.
func (ss *session) relayLogged(app, upstream net.Conn) {
	relay(app, upstream, ss.rt.lim.IdleTimeout, &ss.ci.stats)
	ss.s.metrics.access(ss.ci)
	if ss.s.log.Logger.IsLevelEnabled(logrus.InfoLevel) { // fields cost 4 KiB of allocations
		ss.s.log.WithFields(ss.fields()).Info("access")
	}
}

// handOffBumped runs a bumped connection in a goroutine of its own.
func (ss *session) handOffBumped(app appTLS, upstream *tls.Conn, uerr error, t target) {
	go func() {
		defer ss.s.release(ss.client)
		ss.relayBumped(app, upstream, uerr, t)
	}()
}

// relayBumped is the relay stage of a bumped connection: h2 (by ALPN) is
// relayed as bytes; otherwise the app's first bytes decide between the
// HTTP/1.1 intermediary and a byte relay for other protocols.
func (ss *session) relayBumped(app appTLS, upstream *tls.Conn, uerr error, t target) {
	if p := ss.ci.alpn; p != "" && p != "http/1.1" {
		if upstream == nil {
			app.Close()
			ss.s.metrics.access(ss.ci)
			return
		}
		ss.relayLogged(app, upstream) // h2 end to end
		return
	}
	br := bufio.NewReaderSize(newMeter(app, &ss.ci.stats.in, &ss.ci.stats), appReaderSize)
	if looksHTTP1(app, br, ss.rt.lim.IdleTimeout) {
		ss.serveHTTP1(app, br, upstream, uerr, t)
		return
	}
	if upstream == nil {
		app.Close()
		ss.s.metrics.access(ss.ci)
		return
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if _, err := upstream.Write(b); err != nil {
			app.Close()
			upstream.Close()
			return
		}
	}
	ss.relayLogged(app, upstream)
}

// ctx is the context of the Server's connections: it ends at shutdown.
func (ss *session) ctx() context.Context { return ss.s.ctx }
