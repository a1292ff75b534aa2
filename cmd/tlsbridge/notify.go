package main

import (
	"os"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/sdnotify"
)

// notifier reports run's state to systemd when it starts tlsbridge as a
// Type=notify service (packaging/tlsbridge.service sets $NOTIFY_SOCKET);
// elsewhere it does nothing. A notification that cannot be sent is logged,
// not fatal: the proxy still serves, and systemd's own timeout reports the
// missing READY=1.
type notifier struct {
	n   *sdnotify.Notifier
	log *logrus.Entry
}

func newNotifier(log *logrus.Entry) notifier {
	n, err := sdnotify.New(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		log.WithError(err).Warn("cannot notify systemd; a Type=notify unit will time out waiting for tlsbridge (use Type=exec)")
	}
	return notifier{n: n, log: log}
}

func (s notifier) ready()     { s.report("READY=1", s.n.Ready()) }
func (s notifier) reloading() { s.report("RELOADING=1", s.n.Reloading()) }
func (s notifier) stopping()  { s.report("STOPPING=1", s.n.Stopping()) }

func (s notifier) report(state string, err error) {
	if err != nil {
		s.log.WithError(err).Warn("cannot notify systemd of " + state)
	}
}
