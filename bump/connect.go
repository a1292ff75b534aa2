package bump

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// connectEstablished answers a CONNECT that tlsbridge takes on.
const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// connInfo collects what one CONNECT did, for its access line.
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
	reused         bool   // the upstream connection came from the pool
	user           string // the authenticated proxy user, if [auth] is on
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
	if ci.status != 0 {
		f[logfield.Status] = ci.status
	}
	if from, err := ci.stats.failure(); err != nil {
		f[logfield.ClosedBy] = from
		f[logrus.ErrorKey] = err.Error()
	}
	return f
}

// handleConnect is goproxy's hijack callback for every CONNECT. It owns the
// client connection from here on, and is tracked so shutdown can close it.
func (s *Server) handleConnect(req *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
	if !s.track(client) {
		client.Close()
		return
	}
	handedOff := false // true once a relay goroutine owns client
	defer func() {
		if !handedOff {
			s.release(client)
		}
	}()

	ctx := s.ctx
	ci := &connInfo{id: s.connID.Add(1), start: time.Now(), clientAddr: req.RemoteAddr}
	ci.user, _ = req.Context().Value(proxyUserKey{}).(string)
	ci.host, ci.port = splitTarget(req.URL.Host, -1)
	pol := s.Policy()
	if ci.port < 0 || ci.host == "" {
		ci.action = "deny"
		s.refuse(client, ci, http.StatusBadRequest, fmt.Sprintf("CONNECT target %q is not host:port", req.URL.Host))
		return
	}
	rule, status, reason := admit(pol, ci.host, ci.port, s.cfg.Certs.Authority().Permits)
	ci.action = "deny"
	if rule != nil {
		ci.rule, ci.action = rule.Name, rule.Action.String()
	}
	if status != 0 {
		s.refuse(client, ci, status, reason)
		return
	}
	var pre preDial // auto: the upstream held before the CONNECT is answered
	defer func() { pre.close() }()
	switch rule.Action {
	case policy.ActionTunnel:
		handedOff = s.tunnel(ctx, client, ci, rule, nil, nil)
		return
	case policy.ActionAuto:
		// Both branches of auto need the upstream, and only the app's
		// ClientHello, read after the 200, decides between them: get it
		// first, so a server that is down is answered 502/504 on the
		// CONNECT, which every app reports, rather than with a 200 and a
		// closed connection.
		var ok bool
		if pre, ok = s.preDial(ctx, client, ci, rule); !ok {
			return
		}
	}

	if _, err := io.WriteString(client, connectEstablished); err != nil {
		return
	}
	client.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	hello, err := peekClientHello(ctx, client)
	if err != nil {
		var he *helloError
		if errors.As(err, &he) && errors.Is(err, errNotTLS) && rule.Action == policy.ActionAuto {
			// Not TLS (e.g. plain HTTP or a WebSocket through CONNECT):
			// nothing to upgrade, pass it through untouched.
			client.SetDeadline(time.Time{})
			ci.action = "tunnel"
			handedOff = s.tunnel(ctx, client, ci, rule, he.recorded, pre.takeRaw())
			return
		}
		s.warnClient(ci, err, nil)
		return
	}
	hi := s.noteHello(ci, hello)
	if rule.Action == policy.ActionAuto {
		// The app can meet the upstream minimum on its own: keep its TLS
		// end to end, untouched.
		if hi >= rule.Upstream.MinVersion {
			client.SetDeadline(time.Time{})
			ci.action = "auto-tunnel"
			ci.clientTLS = hi
			handedOff = s.tunnel(ctx, client, ci, rule, hello.recorded, pre.takeRaw())
			return
		}
		ci.action = "auto-bump"
	}
	if err := hello.servable(rule.Client, rule.Name); err != nil {
		hello.refuse(client, err)
		s.warnClient(ci, err, hello)
		return
	}
	handedOff = s.bump(ctx, client, ci, rule, hello, &pre)
}

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

// preDial is the upstream connection an auto CONNECT holds before it answers
// 200: an idle pooled one, which proves the server is there and spares a
// bumped app the upstream handshake, or a new TCP connection. At most one
// is set; whatever the connection does not use is closed.
type preDial struct {
	pooled *tls.Conn
	raw    net.Conn
	key    poolKey
}

// preDial gets the upstream for an auto CONNECT (see preDial). A failed
// dial is answered on the CONNECT (see connectFailed) and reported false.
func (s *Server) preDial(ctx context.Context, client net.Conn, ci *connInfo, rule *policy.Rule) (preDial, bool) {
	key := s.poolKey(rule, ci)
	ci.upstreamAddr = key.addr
	if c := s.pool.take(key); c != nil {
		return preDial{pooled: c, key: key}, true
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	raw, err := s.dialTCP(dctx, rule, ci.host, key.addr, key.name)
	if err != nil {
		s.connectFailed(client, ci, err.(*upstreamError))
		return preDial{}, false
	}
	return preDial{raw: raw, key: key}, true
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

// connectFailed answers a CONNECT whose upstream could not be reached with
// the 502 or 504 that says why and how to fix it (squid answers the same
// way), and logs it with that status: the app saw exactly that.
func (s *Server) connectFailed(client net.Conn, ci *connInfo, ue *upstreamError) {
	status, cause, fix := ue.explain()
	writeResponse(client, status, errorBody(status, ci.host, cause, fix))
	ci.status = status
	s.metrics.failed(ci, sideUpstream, ue, nil)
	s.log.WithFields(ci.fields()).WithField(logfield.Stage, "upstream-"+ue.stage).WithField(logfield.Hint, fix).
		WithError(ue.err).Warnf("upstream failed, CONNECT answered %d: %s", status, cause)
}

// noteHello records what an app's ClientHello offered, for the access line
// and the metrics, and returns the highest version offered.
func (s *Server) noteHello(ci *connInfo, h *clientHello) uint16 {
	ci.sni = h.info.ServerName
	lo, hi := offeredRange(h.info.SupportedVersions)
	ci.clientOffered = versionName(lo) + "-" + versionName(hi)
	s.metrics.hello(hi)
	return hi
}

// release ends the server's ownership of a hijacked connection.
func (s *Server) release(client net.Conn) {
	client.Close()
	s.hijacked.done(client)
	s.metrics.active.Dec()
}

// handOff relays between app and upstream in a goroutine of its own and
// returns, so the http.Server connection goroutine that ran the CONNECT ends:
// its 4 KiB bufio reader, the request, and a stack grown by two TLS
// handshakes are freed while the connection idles. The relay goroutine
// releases client and writes the access line.
func (s *Server) handOff(client, app, upstream net.Conn, ci *connInfo) {
	go func() {
		defer s.release(client)
		s.relayLogged(app, upstream, ci)
	}()
}

// relayLogged relays app and upstream until both end, then writes the
// connection's access line.
func (s *Server) relayLogged(app, upstream net.Conn, ci *connInfo) {
	relay(app, upstream, s.cfg.IdleTimeout, &ci.stats)
	s.metrics.access(ci)
	if s.log.Logger.IsLevelEnabled(logrus.InfoLevel) { // fields cost 4 KiB of allocations
		s.log.WithFields(ci.fields()).Info("access")
	}
}

// handOffBumped runs a bumped connection in a goroutine of its own: h2 (by
// ALPN) is relayed as bytes; otherwise the app's first bytes decide
// between the HTTP/1.1 intermediary and a byte relay for other protocols.
func (s *Server) handOffBumped(client net.Conn, app, upstream *tls.Conn, reused bool, uerr error, ci *connInfo, rule *policy.Rule, key poolKey) {
	go func() {
		defer s.release(client)
		if p := app.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			s.relayLogged(app, upstream, ci) // h2 end to end
			return
		}
		br := bufio.NewReaderSize(newMeter(app, &ci.stats.in, &ci.stats), appReaderSize)
		isHTTP := looksHTTP1(app, br, s.cfg.IdleTimeout)
		if isHTTP {
			s.serveHTTP1(app, br, upstream, reused, uerr, ci, rule, key)
			return
		}
		if upstream == nil {
			app.Close()
			s.metrics.access(ci)
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
		s.relayLogged(app, upstream, ci)
	}()
}

// bump terminates the app's TLS with a minted certificate and re-originates
// TLS to the upstream. The upstream is dialled first so the app can be
// answered with the ALPN protocol the upstream chose (h2 end to end). It
// reports whether a relay goroutine now owns client.
func (s *Server) bump(ctx context.Context, client net.Conn, ci *connInfo, rule *policy.Rule, hello *clientHello, pre *preDial) bool {
	client.SetDeadline(time.Time{})
	key := s.poolKey(rule, ci)
	var upstream *tls.Conn
	var uerr error
	offer := hello.alpn()
	if offersHTTP1(offer) {
		ci.upstreamAddr = key.addr
		if upstream, pre.pooled = pre.pooled, nil; upstream == nil && pre.raw == nil {
			upstream = s.pool.take(key)
		}
		ci.reused = upstream != nil
	}
	if upstream == nil {
		raw := pre.raw
		pre.raw = nil
		upstream, uerr = s.dialUpstreamOn(ctx, rule, ci, offer, raw)
	}
	var protos []string
	switch {
	case uerr == nil && upstream.ConnectionState().NegotiatedProtocol != "":
		protos = []string{upstream.ConnectionState().NegotiatedProtocol}
	case uerr != nil && slices.Contains(offer, "http/1.1"):
		protos = []string{"http/1.1"} // the 502 is HTTP/1.1
	}
	client.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	cfg := appFacingConfig(s.appBase, rule.Client, protos, func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := hi.ServerName
		if name == "" {
			name = ci.host // no SNI, or an IP-literal target
		}
		return s.cfg.Certs.Get(name, s.leafKeyFor(hi))
	})
	app := hello.serve(client, cfg)
	if err := app.HandshakeContext(ctx); err != nil {
		if upstream != nil {
			upstream.Close()
		}
		s.warnClient(ci, err, hello)
		return false
	}
	client.SetDeadline(time.Time{})
	cs := app.ConnectionState()
	ci.clientTLS, ci.clientCipher, ci.alpn = cs.Version, cs.CipherSuite, cs.NegotiatedProtocol
	if upstream != nil {
		us := upstream.ConnectionState()
		ci.upstreamTLS, ci.upstreamCipher = us.Version, us.CipherSuite
	}
	s.handOffBumped(client, app, upstream, ci.reused, uerr, ci, rule, key)
	return true
}

// offersHTTP1 reports whether an app's ALPN offer allows HTTP/1.1: none at
// all, or http/1.1 among its protocols.
func offersHTTP1(protos []string) bool {
	return len(protos) == 0 || slices.Contains(protos, "http/1.1")
}

// poolKey names the upstream connections a bumped CONNECT may share.
func (s *Server) poolKey(rule *policy.Rule, ci *connInfo) poolKey {
	addr, name := upstreamTarget(rule, ci.host, ci.port)
	return poolKey{rule: rule, addr: addr, name: name, user: ci.user}
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

// dialTCP opens the TCP connection to addr within ctx; a failure is an
// *upstreamError that names the host, the address and the name to verify.
func (s *Server) dialTCP(ctx context.Context, rule *policy.Rule, host, addr, name string) (net.Conn, error) {
	c, err := s.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, &upstreamError{stage: "dial", host: host, addr: addr, name: name, rule: rule, err: err}
	}
	return c, nil
}

// dialUpstream connects to the rule's address (or the CONNECT target) and
// completes a verified TLS handshake with the rule's versions and roots.
func (s *Server) dialUpstream(ctx context.Context, rule *policy.Rule, ci *connInfo, protos []string) (*tls.Conn, error) {
	return s.dialUpstreamOn(ctx, rule, ci, protos, nil)
}

// dialUpstreamOn is dialUpstream over raw, the TCP connection to that
// address when it is already dialled (auto dials before answering 200).
func (s *Server) dialUpstreamOn(ctx context.Context, rule *policy.Rule, ci *connInfo, protos []string, raw net.Conn) (*tls.Conn, error) {
	addr, name := upstreamTarget(rule, ci.host, ci.port)
	ci.upstreamAddr = addr
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout) // connect + handshake
	defer cancel()
	if raw == nil {
		var err error
		if raw, err = s.dialTCP(dctx, rule, ci.host, addr, name); err != nil {
			return nil, err
		}
	}
	cfg := s.upstreamConfig(rule).Clone()
	cfg.ServerName = name
	cfg.NextProtos = protos
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return nil, &upstreamError{stage: "handshake", host: ci.host, addr: addr, name: name, rule: rule,
			offers: [2]uint16{rule.Upstream.MinVersion, rule.Upstream.MaxVersion}, err: err}
	}
	return tc, nil
}

// upstreamConfig returns the rule's server-facing template, built once per
// rule so its session cache is shared by the rule's connections.
func (s *Server) upstreamConfig(rule *policy.Rule) *tls.Config {
	s.upstreamMu.Lock()
	defer s.upstreamMu.Unlock()
	cfg, ok := s.upstreamBase[rule]
	if !ok {
		cfg = newUpstreamBase(rule.Upstream)
		s.upstreamBase[rule] = cfg
	}
	return cfg
}

// tunnel relays bytes between the app and the upstream untouched. prefix
// holds bytes already read from the app (a peeked ClientHello). Without
// prefix the CONNECT is answered here: 200 after a successful dial, 502/504
// with the reason otherwise. With prefix it was answered already (auto) and
// upstream is the connection dialled before; if that is nil (auto held a
// pooled TLS connection, unusable for a tunnel) the dial happens now, and a
// failure can only close the app's connection, which the log says. It
// reports whether a relay goroutine now owns client.
func (s *Server) tunnel(ctx context.Context, client net.Conn, ci *connInfo, rule *policy.Rule, prefix []byte, upstream net.Conn) bool {
	addr, _ := upstreamTarget(rule, ci.host, ci.port)
	ci.upstreamAddr = addr
	answered := prefix != nil
	if upstream == nil {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
		var err error
		upstream, err = s.dialTCP(dctx, rule, ci.host, addr, ci.host)
		cancel()
		if err != nil {
			ue := err.(*upstreamError)
			if !answered {
				s.connectFailed(client, ci, ue)
				return false
			}
			_, cause, fix := ue.explain()
			ci.stats.fail(sideUpstream, ue)
			s.metrics.failed(ci, sideUpstream, ue, nil)
			s.log.WithFields(ci.fields()).WithField(logfield.Stage, "upstream-"+ue.stage).WithField(logfield.Hint, fix).
				Warn("upstream failed after the CONNECT was answered 200; the app's connection was closed: " + cause)
			return false
		}
	}
	if !answered {
		if _, err := io.WriteString(client, connectEstablished); err != nil {
			upstream.Close()
			return false
		}
	}
	if len(prefix) > 0 {
		if _, err := upstream.Write(prefix); err != nil {
			upstream.Close()
			return false
		}
		ci.stats.in.Add(int64(len(prefix)))
	}
	s.handOff(client, client, upstream, ci)
	return true
}

// refuse answers a CONNECT with an error status and a plain-text reason.
func (s *Server) refuse(client net.Conn, ci *connInfo, status int, reason string) {
	ci.status = status
	writeResponse(client, status, "tlsbridge: "+reason+"\n")
	s.metrics.access(ci)
	s.log.WithFields(ci.fields()).Info("access: " + reason)
}

// writeResponse writes a complete HTTP/1.1 response that closes the connection.
func writeResponse(w io.Writer, status int, body string) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	_, _ = w.Write(b.Bytes())
}

// warnClient logs a failed app-facing handshake with a hint for known
// causes. An app that closes before sending a ClientHello (a port probe, a
// client giving up) is only noted at Info; one that closes after it failed
// its handshake, which deserves a warning and a hint like any other.
func (s *Server) warnClient(ci *connInfo, err error, hello *clientHello) {
	s.metrics.failed(ci, sideApp, err, hello)
	e := s.log.WithFields(ci.fields()).WithError(err)
	if hint := hintFor(err, hello, s.Policy().CA.LeafKey); hint != "" {
		e = e.WithField(logfield.Hint, hint)
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

// proxyPortTLS completes the TLS handshake of an app that speaks TLS to the
// proxy port itself (HTTPS_PROXY=https://...) before the proxy protocol
// starts, so a failure is logged here, at Warn with a hint, and not lost in
// http.Server's error log. It reports false, with c closed, on failure.
func (s *Server) proxyPortTLS(ctx context.Context, c net.Conn) (*tls.Conn, bool) {
	var hello *clientHello
	cfg := s.proxyTLSConfig()
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = &clientHello{info: hi}
		return nil, nil // go on with cfg
	}
	tc := tls.Server(c, cfg)
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	err := tc.HandshakeContext(ctx)
	c.SetDeadline(time.Time{})
	if err == nil {
		return tc, true
	}
	tc.Close()
	if ctx.Err() != nil {
		return nil, false // shutting down
	}
	s.metrics.failures.WithLabelValues(sideApp, reason(err, hello)).Inc()
	f := logrus.Fields{logfield.ClientAddr: c.RemoteAddr().String(), logfield.Listen: c.LocalAddr().String()}
	if hello != nil {
		if hello.info.ServerName != "" {
			f[logfield.SNI] = hello.info.ServerName
		}
		lo, hi := offeredRange(hello.info.SupportedVersions)
		f[logfield.ClientOffered] = versionName(lo) + "-" + versionName(hi)
	}
	hint := hintFor(err, hello, s.Policy().CA.LeafKey)
	switch {
	case strings.Contains(hint, hintTrust):
		hint = strings.Replace(hint, hintTrust, fmt.Sprintf(hintProxyTrust, c.LocalAddr()), 1)
	case hint == "":
		hint = fmt.Sprintf("the app speaks TLS to the proxy port (an https:// proxy URL) and failed its handshake with the proxy's own certificate; "+
			"write the proxy URL with http:// (HTTPS_PROXY=http://%s) unless the app needs TLS to the proxy", c.LocalAddr())
	}
	s.log.WithFields(f).WithField(logfield.Hint, hint).WithError(err).Warn("TLS handshake on the proxy port failed")
	return nil, false
}
