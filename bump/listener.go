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
// finish for limits.drain_timeout and closes the rest. It returns nil after a clean
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
	defer s.removeSelf(ln.Addr())
	fl := &fixedListener{
		s:     s,
		l:     l,
		addr:  ln.Addr().String(),
		t:     listenerTarget(l, s.aia),
		conns: newConnSet(),
	}

	err := acceptUntilDone(ctx, cancel, ln, func() error { return fl.acceptLoop(ctx, ln) })
	fl.conns.shutdown(s.rt.Load().lim.DrainTimeout)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: accept on %s: %w", l.Name, fl.addr, err)
	}
	return nil
}

// fixedListener is one running [[listener]]: an entry point of the
// pipeline whose target is fixed.
type fixedListener struct {
	s     *Server
	l     *policy.Listener
	addr  string // local address, for logs
	t     target
	conns *connSet
}

// acceptLoop accepts until ln is closed and hands each admitted connection
// to an owned goroutine.
func (fl *fixedListener) acceptLoop(ctx context.Context, ln net.Listener) error {
	return fl.s.accept(ctx, ln, fl.l.Name, false, func(c net.Conn) bool {
		if !fl.conns.add(c) {
			c.Close()
			return false
		}
		go func() {
			defer fl.conns.done(c)
			fl.serveConn(c)
		}()
		return true
	})
}

// serveConn runs the pipeline for one app connection: peek and terminate
// when the app speaks TLS (client_tls), dial, relay.
func (fl *fixedListener) serveConn(c net.Conn) {
	defer c.Close()
	s := fl.s
	s.metrics.active.Inc()
	defer s.metrics.active.Dec()
	ss := s.newSession(s.rt.Load(), c, c.RemoteAddr().String())
	ss.listen = fl.addr
	ss.ci.app = s.apps.note(c)
	ss.ci.host, ss.ci.port, ss.ci.rule, ss.ci.action = fl.t.host, fl.t.port, fl.l.Name, "listener"
	if !fl.l.ClientTLS {
		upstream, err := fl.dial(ss, fl.l.ALPN)
		if err != nil {
			ss.upstreamFailed(err.(*upstreamError), "upstream failed, app connection closed")
			return
		}
		fl.relay(ss, c, upstream)
		return
	}
	// The ClientHello is read first so that the upstream can be offered
	// the app's ALPN protocols, and the app answered with the one the
	// upstream chose.
	hello, err := ss.peek()
	if err != nil {
		if errors.Is(err, errNotTLS) {
			ss.warnClient(&listenerNotTLSError{name: fl.l.Name, err: err}, nil)
			return
		}
		ss.warnClient(err, nil)
		return
	}
	if !ss.servable(hello, fl.l.Client, fl.l.Name) {
		return
	}
	upstream, err := fl.dial(ss, fl.upstreamOffer(hello.alpn()))
	if err != nil {
		ss.upstreamFailed(err.(*upstreamError), "upstream failed, app connection closed")
		return
	}
	var chosen string
	if tc, ok := upstream.(*tls.Conn); ok {
		chosen = tc.ConnectionState().NegotiatedProtocol
	}
	app, ok := ss.terminate(hello, fl.l.Client, fl.appProtos(chosen), fl.leafName())
	if !ok {
		upstream.Close()
		return
	}
	fl.relay(ss, app, upstream)
}

// relay copies bytes until both directions end and logs the access line.
func (fl *fixedListener) relay(ss *session, app, upstream net.Conn) {
	if tc, ok := upstream.(*tls.Conn); ok {
		us := tc.ConnectionState()
		ss.ci.upstreamTLS, ss.ci.upstreamCipher = us.Version, us.CipherSuite
		if ss.ci.alpn == "" {
			ss.ci.alpn = us.NegotiatedProtocol
		}
	}
	ss.relayLogged(app, upstream)
}

// listenerTarget is a listener's fixed target: one rule and one
// server-facing template per listener, so the template's session cache is
// shared by the listener's connections.
func listenerTarget(l *policy.Listener, aia *aiaFetcher) target {
	host, port := splitTarget(l.Upstream, -1)
	rule := &policy.Rule{Name: l.Name, Action: policy.ActionBump, Client: l.Client, Upstream: l.UpstreamTLS}
	addr, name := upstreamTarget(rule, host, port)
	t := target{rule: rule, host: host, port: port, addr: addr, name: name, aia: aia}
	if !l.PlainUpstream {
		t.tls = newUpstreamBase(l.UpstreamTLS)
	}
	return t
}

// target is the listener's target under the snapshot of a connection: the
// snapshot's, which carries what a reload applies to a running listener
// (client_cert and proxy_auth_file read again, see policy.Listener.Equal),
// else the one the listener started with.
func (fl *fixedListener) target(rt *snapshot) target {
	if lt, ok := rt.listeners[fl.l.Name]; ok && lt.l.Equal(fl.l) {
		return lt.t
	}
	return fl.t
}

// dial connects to the listener's upstream: verified TLS offering protos, or
// plain TCP when upstream_tls = false.
func (fl *fixedListener) dial(ss *session, protos []string) (net.Conn, error) {
	t := fl.target(ss.rt)
	if t.tls == nil {
		return ss.dialTCP(t)
	}
	tc, err := ss.dialTLS(t, protos, nil)
	if err != nil {
		return nil, err // not a typed-nil *tls.Conn in the interface
	}
	return tc, nil
}

// leafName is the name of the certificate the app is shown: server_name,
// else the upstream host (the name the app was pointed at, e.g. through its
// hosts file).
func (fl *fixedListener) leafName() string {
	if n := fl.l.UpstreamTLS.ServerName; n != "" {
		return n
	}
	return fl.t.host
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
