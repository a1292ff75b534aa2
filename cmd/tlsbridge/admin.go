package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
)

// adminShutdownTimeout bounds how long a slow download of /ca.pem delays
// shutdown.
const adminShutdownTimeout = 5 * time.Second

// startAdmin serves the [admin] endpoints (the census at /, /census.json
// and /census.csv, /ca.pem, /ca.der, /healthz, /readyz from ready,
// /metrics from proxy) on
// listen until ctx ends or stop is called; stop also waits for the server's
// goroutines. With an empty listen it does nothing. policy has already
// refused a non-loopback listen without allow_clients. The port is added to
// proxy's own addresses, so it answers 508 to requests aimed at it.
func startAdmin(ctx context.Context, listen string, a *ca.Authority, proxy *bump.Server, ready func() bool, lg *logrus.Entry) (stop func(), err error) {
	if listen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: cannot listen on %q: %w (is another tlsbridge running? change [admin] listen in the config, or leave it empty)", listen, err)
	}
	proxy.RefuseOwnAddr(ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("/", bump.NewAdminHandler(a, proxy.MetricsHandler(), ready))
	census := proxy.CensusHandler(bump.CensusPage{Version: versionLine(), CA: a})
	for _, p := range []string{"GET /{$}", "GET /census.json", "GET /census.csv"} {
		mux.Handle(p, census)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: bump.AdminReadHeaderTimeout,
		WriteTimeout:      bump.AdminWriteTimeout,
		IdleTimeout:       bump.AdminIdleTimeout,
		ErrorLog:          log.New(adminLogWriter{lg}, "", 0),
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			lg.WithError(err).Error("admin listener stopped")
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	})
	lg.WithField(logfield.Listen, ln.Addr().String()).Infof("admin listening: the census at http://%s/; fetch the CA with curl -o tlsbridge-ca.pem http://%s/ca.pem (or /ca.der)", ln.Addr(), ln.Addr())
	return func() { cancel(); wg.Wait() }, nil
}

// adminLogWriter adapts the admin server's ErrorLog (TLS noise, bad
// requests) into the logger at Warn.
type adminLogWriter struct{ e *logrus.Entry }

func (w adminLogWriter) Write(p []byte) (int, error) {
	w.e.WithField(logfield.Listen, "admin").Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
