package main

import (
	"context"
	"fmt"
	"net"
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
		ln, err := bump.Listen(ctx, l.Listen)
		if err != nil {
			closeListeners(lns)
			return nil, fmt.Errorf("%s.listen: cannot listen on %q: %w (is another program using the port? change %s.listen in the config)", l.Name, l.Listen, err, l.Name)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// closeListeners closes lns; closing one ServeListener already closed is
// harmless, so this can be deferred.
func closeListeners(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// serveListeners serves each opened listener (lns[i] is pol.Listeners[i])
// in a goroutine owned by wg, until ctx ends or srv is closed. A listener
// that stops on an accept error is logged at Error; the others and the
// proxy keep running.
func serveListeners(ctx context.Context, wg *sync.WaitGroup, srv *bump.Server, pol *policy.Policy, lns []net.Listener, log *logrus.Entry) {
	for i, ln := range lns {
		l := pol.Listeners[i]
		e := log.WithFields(logrus.Fields{
			logfield.Rule:         l.Name,
			logfield.Listen:       ln.Addr().String(),
			logfield.UpstreamAddr: l.Upstream,
			logfield.ClientTLS:    l.ClientTLS,
			logfield.UpstreamTLS:  !l.PlainUpstream,
		})
		e.Info("listener forwarding")
		wg.Go(func() {
			if err := srv.ServeListener(ctx, ln, l); err != nil {
				e.WithError(err).Error("listener stopped; restart tlsbridge to open it again")
			}
		})
	}
}
