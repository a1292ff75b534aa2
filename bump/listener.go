package bump

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// ServeListener serves one [[listener]] (a fixed tunnel) on ln until ctx
// ends or Close is called: every connection from an allowed client is
// forwarded to l.Upstream, like nginx's stream module with proxy_ssl on or
// stunnel, but with verification and SNI on by default.
//
//   - l.ClientTLS false: the app speaks plain TCP; the upstream is dialled
//     with verified TLS at once (server-speaks-first protocols work).
//   - l.ClientTLS true: the app speaks (legacy) TLS to a leaf minted for
//     l.UpstreamTLS.ServerName or the upstream host; its ALPN offer is passed upstream
//     and answered with the upstream's choice, so h2 works end to end.
//   - l.PlainUpstream: the app's TLS is terminated and the backend gets
//     plain TCP (a TLS front for a plain service).
//
// It returns when ctx ends or ln is closed (a reload closes the port of a
// listener whose settings changed, and serves the new settings on a new
// ServeListener); then, as Serve's shutdown does, it lets connections
// finish for DrainTimeout and closes the rest. It returns nil after a clean
// shutdown. SetPolicy changes the allow-list a running listener enforces.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener, l *policy.Listener) error {
	if l == nil {
		panic("bump: ServeListener with a nil *policy.Listener")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	s.addSelf(ln.Addr())
	host, port := splitTarget(l.Upstream, -1)
	fl := &fixedListener{
		s:    s,
		l:    l,
		addr: ln.Addr().String(),
		host: host,
		port: port,
		// One rule per listener, built once, so that dialUpstream's
		// per-rule session cache is shared by the listener's connections.
		rule:  &policy.Rule{Name: l.Name, Action: policy.ActionBump, Client: l.Client, Upstream: l.UpstreamTLS},
		conns: newConnSet(),
	}

	err := acceptUntilDone(ctx, cancel, ln, func() error { return fl.acceptLoop(ctx, ln) })
	fl.conns.shutdown(s.cfg.DrainTimeout)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: accept on %s: %w", l.Name, fl.addr, err)
	}
	return nil
}

// fixedListener is one running [[listener]].
type fixedListener struct {
	s     *Server
	l     *policy.Listener
	addr  string // local address, for logs
	host  string // upstream host, the default leaf and verification name
	port  int
	rule  *policy.Rule
	conns *connSet
}

// acceptLoop accepts until ln is closed and hands each admitted connection
// to an owned goroutine.
func (fl *fixedListener) acceptLoop(ctx context.Context, ln net.Listener) error {
	return fl.s.accept(ctx, ln, fl.l.Name, nil, func(c net.Conn) bool {
		if !fl.conns.add(c) {
			c.Close()
			return false
		}
		go func() {
			defer fl.conns.done(c)
			fl.serveConn(ctx, c)
		}()
		return true
	})
}

// serveConn forwards one app connection and logs its access line.
func (fl *fixedListener) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	fl.s.metrics.active.Inc()
	defer fl.s.metrics.active.Dec()
	ci := &connInfo{
		id:         fl.s.connID.Add(1),
		start:      time.Now(),
		clientAddr: c.RemoteAddr().String(),
		host:       fl.host,
		port:       fl.port,
		rule:       fl.l.Name,
		action:     "listener",
	}
	if fl.l.ClientTLS {
		fl.serveTLS(ctx, c, ci)
		return
	}
	upstream, err := fl.dial(ctx, ci, fl.l.ALPN)
	if err != nil {
		fl.upstreamFailed(ci, err)
		return
	}
	fl.relay(c, upstream, ci)
}

// serveTLS terminates the app's TLS. The ClientHello is read first so that
// the upstream can be offered the app's ALPN protocols, and the app answered
// with the one the upstream chose.
func (fl *fixedListener) serveTLS(ctx context.Context, c net.Conn, ci *connInfo) {
	s := fl.s
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	hello, err := peekClientHello(ctx, c)
	if err != nil {
		if errors.Is(err, errNotTLS) {
			s.metrics.failed(ci, sideApp, err, nil)
			s.log.WithFields(fl.fields(ci)).WithError(err).
				WithField(logfield.Hint, fmt.Sprintf("%s has client_tls = true but the app sent no TLS ClientHello; set client_tls = false if the app speaks plain TCP", fl.l.Name)).
				Warn("app-facing TLS handshake failed")
			return
		}
		s.warnClient(ci, err, nil)
		return
	}
	s.noteHello(ci, hello)
	if err := hello.servable(fl.l.Client, fl.l.Name); err != nil {
		hello.refuse(c, err)
		s.warnClient(ci, err, hello)
		return
	}

	c.SetDeadline(time.Time{}) // the dial has its own timeout
	upstream, err := fl.dial(ctx, ci, fl.upstreamOffer(hello.alpn()))
	if err != nil {
		fl.upstreamFailed(ci, err)
		return
	}
	var chosen string
	if tc, ok := upstream.(*tls.Conn); ok {
		chosen = tc.ConnectionState().NegotiatedProtocol
	}

	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	name := fl.leafName()
	cfg := appFacingConfig(s.appBase, fl.l.Client, fl.appProtos(chosen), func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return s.cfg.Certs.Get(name, s.leafKeyFor(hi))
	})
	app := hello.serve(c, cfg)
	if err := app.HandshakeContext(ctx); err != nil {
		upstream.Close()
		s.warnClient(ci, err, hello)
		return
	}
	c.SetDeadline(time.Time{})
	cs := app.ConnectionState()
	ci.clientTLS, ci.clientCipher, ci.alpn = cs.Version, cs.CipherSuite, cs.NegotiatedProtocol
	fl.relay(app, upstream, ci)
}

// relay copies bytes until both directions end and logs the access line.
func (fl *fixedListener) relay(app, upstream net.Conn, ci *connInfo) {
	if tc, ok := upstream.(*tls.Conn); ok {
		us := tc.ConnectionState()
		ci.upstreamTLS, ci.upstreamCipher = us.Version, us.CipherSuite
		if ci.alpn == "" {
			ci.alpn = us.NegotiatedProtocol
		}
	}
	relay(app, upstream, fl.s.cfg.IdleTimeout, &ci.stats)
	fl.s.metrics.access(ci)
	fl.s.log.WithFields(fl.fields(ci)).Info("access")
}

// dial connects to the listener's upstream: verified TLS offering protos, or
// plain TCP when upstream_tls = false.
func (fl *fixedListener) dial(ctx context.Context, ci *connInfo, protos []string) (net.Conn, error) {
	if !fl.l.PlainUpstream {
		tc, err := fl.s.dialUpstream(ctx, fl.rule, ci, protos)
		if err != nil {
			return nil, err // not a typed-nil *tls.Conn in the interface
		}
		return tc, nil
	}
	addr, _ := upstreamTarget(fl.rule, fl.host, fl.port)
	ci.upstreamAddr = addr
	dctx, cancel := context.WithTimeout(ctx, fl.s.cfg.DialTimeout)
	defer cancel()
	return fl.s.dialTCP(dctx, fl.rule, fl.host, addr, fl.host)
}

// upstreamFailed logs a failed dial or handshake with its cause and fix; the
// caller then closes the app's connection, which is all a byte stream allows.
func (fl *fixedListener) upstreamFailed(ci *connInfo, err error) {
	var ue *upstreamError
	if !errors.As(err, &ue) {
		ue = &upstreamError{stage: "dial", host: fl.host, rule: fl.rule, err: err}
	}
	_, cause, fix := ue.explain()
	fl.s.metrics.failed(ci, sideUpstream, ue, nil)
	fl.s.log.WithFields(fl.fields(ci)).WithField(logfield.Stage, "upstream-"+ue.stage).
		WithField(logfield.Hint, fix).WithError(ue.err).Warn("upstream failed, app connection closed: " + cause)
}

// fields are the access-line fields plus the listener's local address.
func (fl *fixedListener) fields(ci *connInfo) logrus.Fields {
	f := ci.fields()
	f[logfield.Listen] = fl.addr
	return f
}

// leafName is the name of the certificate the app is shown: server_name,
// else the upstream host (the name the app was pointed at, e.g. through its
// hosts file).
func (fl *fixedListener) leafName() string {
	if n := fl.l.UpstreamTLS.ServerName; n != "" {
		return n
	}
	return fl.host
}

// upstreamOffer is the ALPN list sent upstream: the app's offer, limited to
// the pinned alpn list when there is one; the pinned list itself when the
// app offers nothing (an app that speaks one protocol without ALPN).
func (fl *fixedListener) upstreamOffer(app []string) []string {
	pinned := fl.l.ALPN
	switch {
	case len(pinned) == 0:
		return app
	case len(app) == 0:
		return pinned
	}
	var offer []string
	for _, p := range app {
		if slices.Contains(pinned, p) {
			offer = append(offer, p)
		}
	}
	return offer
}

// appProtos is what the app may negotiate: the upstream's choice, else the
// pinned list (the backend speaks those without ALPN, as with a plain
// upstream), else nothing (the app falls back to its default, http/1.1 for
// HTTP clients).
func (fl *fixedListener) appProtos(upstreamChose string) []string {
	if upstreamChose != "" {
		return []string{upstreamChose}
	}
	return fl.l.ALPN
}

// connSet owns connections served by goroutines of their own (a listener's,
// the proxy's hijacked CONNECTs): the goroutines are counted, and shutdown
// closes whatever is left after the drain.
type connSet struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

func newConnSet() *connSet { return &connSet{conns: make(map[net.Conn]struct{})} }

// add registers c before its goroutine starts; false once shutdown began,
// so wg.Add never races wg.Wait.
func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return false
	}
	cs.wg.Add(1)
	cs.conns[c] = struct{}{}
	return true
}

// done unregisters c when its goroutine ends.
func (cs *connSet) done(c net.Conn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.mu.Unlock()
	cs.wg.Done()
}

// shutdown waits up to timeout for the connections to end, then closes the
// rest and waits for their goroutines.
func (cs *connSet) shutdown(timeout time.Duration) {
	cs.mu.Lock()
	cs.closing = true
	cs.mu.Unlock()
	done := make(chan struct{})
	go func() { cs.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	cs.mu.Lock()
	for c := range cs.conns {
		c.Close()
	}
	cs.mu.Unlock()
	<-done
}
