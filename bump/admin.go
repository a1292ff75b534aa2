package bump

import (
	"bytes"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// NewAdminHandler returns the handler of the [admin] listener: GET (or
// HEAD) /ca.pem serves the CA certificate as PEM (application/x-pem-file),
// /ca.der as DER (application/pkix-cert, RFC 2585), so devices and
// containers can fetch it with curl; /healthz answers "ok" while the
// process runs; /readyz answers "ready" while ready reports true and 503
// "not ready" otherwise, for load balancers and probes (if ready is nil,
// always "ready": the CA is loaded, or there would be no handler); /metrics
// serves metrics (Server.MetricsHandler; absent if metrics is nil);
// /debug/pprof/ serves the runtime's profiles. Only the
// certificate is served, never a key. It panics if a is nil.
func NewAdminHandler(a *ca.Authority, metrics http.Handler, ready func() bool) http.Handler {
	if a == nil {
		panic("bump.NewAdminHandler: nil Authority")
	}
	// The CA cannot change while the process runs (a new CA needs a
	// restart), so its files are fixed; NotBefore is their mod time.
	mod := a.Cert.NotBefore
	mux := http.NewServeMux()
	serve := func(data []byte, ctype, name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			// ServeContent handles HEAD, Range and If-Modified-Since.
			http.ServeContent(w, r, name, mod, bytes.NewReader(data))
		}
	}
	// The root apps trust: the CA itself, or for an imported sub-CA the
	// organisation's root it chains to.
	mux.Handle("GET /ca.pem", serve(a.RootPEM(), "application/x-pem-file", "tlsbridge-ca.pem"))
	mux.Handle("GET /ca.der", serve(a.Root().Raw, "application/pkix-cert", "tlsbridge-ca.der"))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	// Profiles for operators and the perf work (go tool pprof
	// http://127.0.0.1:3129/debug/pprof/profile); the admin listener is
	// loopback-only unless allow_clients says otherwise.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// Admin listener timeouts: it serves a few kilobytes to local clients, so
// anything slower is a stuck or hostile client.
const (
	AdminReadHeaderTimeout = 5 * time.Second
	AdminWriteTimeout      = 10 * time.Second
	AdminIdleTimeout       = 60 * time.Second
)
