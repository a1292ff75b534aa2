package main

import (
	"os"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/sdnotify"
)

// notifier holds run's lifecycle (starting, serving, draining) and reports
// it to systemd when it starts tlsbridge as a Type=notify service
// (packaging/tlsbridge.service sets $NOTIFY_SOCKET) and to load balancers
// through the admin listener's /readyz (serving). Outside systemd the
// notifications do nothing. One that cannot be sent is logged, not fatal:
// the proxy still serves, and systemd's own timeout reports the missing
// READY=1.
type notifier struct {
	n        *sdnotify.Notifier
	log      *logrus.Entry
	started  atomic.Bool // ready was called: the ports are open
	draining atomic.Bool // stopping was called; a late ready changes nothing
	watched  atomic.Bool // /readyz was asked at least once: a balancer or probe polls it
}

func newNotifier(log *logrus.Entry) *notifier {
	n, err := sdnotify.New(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		log.WithError(err).Warn("cannot notify systemd; a Type=notify unit will time out waiting for tlsbridge (use Type=exec)")
	}
	return &notifier{n: n, log: log}
}

// ready: the ports are open (at start), or a reload is done.
func (s *notifier) ready() {
	s.started.Store(true)
	s.report("READY=1", s.n.Ready())
}

// reloading: a reload has begun; the proxy serves on meanwhile.
func (s *notifier) reloading() { s.report("RELOADING=1", s.n.Reloading()) }

// stopping: the drain has begun; /readyz fails from now on.
func (s *notifier) stopping() {
	s.draining.Store(true)
	s.report("STOPPING=1", s.n.Stopping())
}

// serving reports whether tlsbridge is started and not draining.
func (s *notifier) serving() bool { return s.started.Load() && !s.draining.Load() }

// readyz is what /readyz reports: serving. It also records that something
// polls /readyz, which is what makes the drain wait [admin] drain_delay.
func (s *notifier) readyz() bool {
	s.watched.Store(true)
	return s.serving()
}

func (s *notifier) report(state string, err error) {
	if err != nil {
		s.log.WithError(err).Warn("cannot notify systemd of " + state)
	}
}
