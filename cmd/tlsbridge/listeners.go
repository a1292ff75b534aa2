package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// openListeners opens the port of every [[listener]], in file order, before
// anything is served: a port that is taken fails startup naming the
// listener's key, and the ports already opened are closed again.
func openListeners(ctx context.Context, pol *policy.Policy) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, len(pol.Listeners))
	for _, l := range pol.Listeners {
		ln, err := listen(ctx, l)
		if err != nil {
			closeListeners(lns)
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func listen(ctx context.Context, l *policy.Listener) (net.Listener, error) {
	ln, err := bump.Listen(ctx, l.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s.listen: cannot listen on %q: %w (is another program using the port? change %s.listen in the config)", l.Name, l.Listen, err, l.Name)
	}
	return ln, nil
}

// closeListeners closes lns; closing one ServeListener already closed is
// harmless, so this can be deferred.
func closeListeners(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// listenerSet runs the [[listener]] ports. On reload it keeps every listener
// whose settings are unchanged (its connections are not touched), closes
// the port of each one that changed or is gone (its connections finish
// under the old settings, as ServeListener drains them), and opens the new
// ones. Only the goroutine that calls reload uses it after start.
type listenerSet struct {
	ctx     context.Context
	wg      *sync.WaitGroup
	srv     *bump.Server
	log     *logrus.Entry
	running []runningListener
}

type runningListener struct {
	l  *policy.Listener
	ln net.Listener
}

// start serves each opened listener (lns[i] is pol.Listeners[i]) in a
// goroutine owned by s.wg, until s.ctx ends or srv is closed. A listener
// that stops on an accept error is logged at Error; the others and the
// proxy keep running.
func (s *listenerSet) start(pol *policy.Policy, lns []net.Listener) {
	for i, ln := range lns {
		s.serve(pol.Listeners[i], ln)
	}
}

func (s *listenerSet) serve(l *policy.Listener, ln net.Listener) {
	e := s.log.WithFields(logrus.Fields{
		logfield.Rule:         l.Name,
		logfield.Listen:       ln.Addr().String(),
		logfield.UpstreamAddr: l.Upstream,
		logfield.ClientTLS:    l.ClientTLS,
		logfield.UpstreamTLS:  !l.PlainUpstream,
	})
	e.Info("listener forwarding")
	s.running = append(s.running, runningListener{l: l, ln: ln})
	s.wg.Go(func() {
		if err := s.srv.ServeListener(s.ctx, ln, l); err != nil {
			e.WithError(err).Error("listener stopped; reload (SIGHUP) or restart tlsbridge to open it again")
		}
	})
}

// reload brings the running listeners in line with pol. A port that cannot
// be opened is logged at Error naming its key; the rest go on.
func (s *listenerSet) reload(pol *policy.Policy) {
	old := s.running
	s.running = nil
	var kept []*policy.Listener
	for _, r := range old {
		i := slices.IndexFunc(pol.Listeners, r.l.Equal)
		if i >= 0 {
			s.running = append(s.running, r)
			kept = append(kept, pol.Listeners[i])
			continue
		}
		r.ln.Close() // ServeListener drains its connections and returns
		s.log.WithFields(logrus.Fields{logfield.Rule: r.l.Name, logfield.Listen: r.ln.Addr().String()}).
			Info("listener closed: changed or removed by the reload")
	}
	for _, l := range pol.Listeners {
		if slices.IndexFunc(kept, l.Equal) >= 0 {
			continue
		}
		ln, err := listen(s.ctx, l)
		if err != nil {
			s.log.WithError(err).Error("listener not opened")
			continue
		}
		s.serve(l, ln)
	}
}
