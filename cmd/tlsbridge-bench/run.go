package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseOptions(args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return fmt.Errorf("read -cacert: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("-cacert %s: no PEM certificate in it", o.caFile)
	}
	base := &tls.Config{
		RootCAs:      roots,
		MinVersion:   o.version, //nolint:gosec // this tool plays a legacy app
		MaxVersion:   o.version,
		CipherSuites: o.suites,
	}
	switch o.resume {
	case resumeTicket:
		base.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
	case resumeOff:
		// An OpenSSL 1.0 app (what this tool plays) sends an empty
		// session_ticket extension on every connection even when it keeps
		// no session; Go's client sends it only with a cache, so it gets
		// one that forgets.
		base.ClientSessionCache = forgetfulCache{}
	}
	var s *summary
	switch {
	case o.idle > 0:
		s, err = holdIdle(ctx, o, base)
	case o.bulk > 0:
		s, err = bulk(ctx, o, base)
	default:
		s, err = load(ctx, o, base)
	}
	if err != nil {
		return err
	}
	if o.json {
		if err := s.writeJSON(stdout); err != nil {
			return err
		}
	} else {
		s.writeText(stdout)
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d errors (first: %s)", s.Errors, s.FirstError)
	}
	if o.resume != resumeOff && s.Offered > 0 && s.ResumedFraction < minResumed {
		return fmt.Errorf("-resume %s: %d of %d handshakes that offered a session resumed (%.1f%%, want at least %.0f%%): the proxy does not resume these sessions",
			o.resume, s.Resumed, s.Offered, 100*s.ResumedFraction, 100*minResumed)
	}
	return nil
}

func startCPU(o *options) (cpuSnapshot, error) {
	if len(o.pids) == 0 {
		return nil, nil
	}
	return takeCPU(o.pids)
}

// percentile returns the p-th percentile of sorted latencies (nearest rank
// below).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// forgetfulCache is a ClientSessionCache that keeps nothing: the hello
// carries the session_ticket extension, and no connection resumes.
type forgetfulCache struct{}

func (forgetfulCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (forgetfulCache) Put(string, *tls.ClientSessionState)        {}
