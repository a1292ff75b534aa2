package bump

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

// Config configures a Server. Policy and Certs are required.
type Config struct {
	// Policy is the validated configuration: rules, ports, client allow-list.
	Policy *policy.Policy

	// Certs mints and caches the leaf certificates shown to apps.
	Certs *ca.Cache

	// Log receives access lines (Info), failed handshakes (Warn) and
	// goproxy's chatter (Debug). If nil, nothing is logged.
	Log *logrus.Entry

	// ProxyNames are the names the proxy's own certificate is valid for, used
	// when an app speaks TLS to the proxy port. If nil, the listen host,
	// "localhost", "127.0.0.1" and "::1".
	ProxyNames []string

	// The timeouts and bounds are the policy's [limits]: they change with
	// SetPolicy, like every other setting derived from the policy.

	// Dial opens upstream TCP connections. If nil, a net.Dialer. tlsbridge
	// never uses HTTP_PROXY/HTTPS_PROXY from its own environment.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// LeafMints, if non-nil, is exported as tlsbridge_cert_mint_seconds;
	// its Observe must be the OnMint hook of Certs. If nil, mint times are
	// not exported (the cache's counters still are).
	LeafMints *LeafMints
}

// Server is the proxy: the front door of the proxy port (front.go), the
// [[listener]] ports (listener.go), and the connection pipeline they share
// (session.go), all under the snapshot of the policy in force (snapshot.go).
type Server struct {
	cfg     Config
	log     *logrus.Entry
	rt      atomic.Pointer[snapshot] // see snapshot.go
	proxy   *goproxy.ProxyHttpServer // plain-HTTP forwarding only
	appBase *tls.Config
	tickets *ticketKeys   // appBase's session ticket keys, rotating
	legacy  *legacyEngine // OpenSSL for legacy apps (engine.go); nil unless built with the tag openssl
	metrics *metrics      // see metrics.go

	connID atomic.Uint64
	pool   upstreamPool // idle upstream connections (pool.go)
	active atomic.Int64 // admitted app connections, for max_connections

	auth authGuard   // proxy authentication (guard.go)
	aia  *aiaFetcher // intermediates fetched for fetch_intermediates (aia.go)

	census  *census      // the legacy-TLS census (census.go); survives reloads
	apps    *appResolver // app processes for the census (appid.go)
	started time.Time

	selfMu sync.Mutex
	self   []*net.TCPAddr // addresses tlsbridge listens on now (loop refusal)

	hijacked *connSet       // proxy-port connections in the pipeline
	sniffing sync.WaitGroup // accepted connections not yet in the pipeline or http.Server
	cancel   context.CancelFunc
	ctx      context.Context
	once     sync.Once
}

// New checks cfg and builds a Server. It panics on a nil Policy or Certs,
// which are programmer errors.
func New(cfg Config) (*Server, error) {
	if cfg.Policy == nil || cfg.Certs == nil {
		panic("bump.New: Config.Policy and Config.Certs are required")
	}
	if cfg.ProxyNames == nil {
		cfg.ProxyNames = proxyNames(cfg.Policy.Listen)
	}
	if cfg.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		cfg.Dial = d.DialContext
	}
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		log = logrus.NewEntry(l)
	}
	base := newAppFacingBase()
	tickets, err := newTicketKeys(base)
	if err != nil {
		return nil, fmt.Errorf("bump: %w", err)
	}
	legacy, err := newLegacyEngine()
	if err != nil {
		return nil, fmt.Errorf("bump: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      log,
		appBase:  base,
		tickets:  tickets,
		legacy:   legacy,
		hijacked: newConnSet(),
		ctx:      ctx,
		cancel:   cancel,
	}
	s.metrics = newMetrics(cfg.Certs, cfg.LeafMints)
	if legacy != nil {
		s.metrics.watchSessions(legacy.sessions)
	}
	s.aia = newAIAFetcher(s.dial, log, s.metrics)
	s.rt.Store(s.newSnapshot(cfg.Policy))
	if err := s.applySessions(cfg.Policy.Limits); err != nil {
		return nil, fmt.Errorf("bump: %w", err)
	}
	s.proxy = s.newProxy()
	var lookup lookupFunc
	if processLookup {
		lookup = lookupSocketProcess
	}
	s.apps = newAppResolver(lookup)
	s.census, s.started = newCensus(censusMax, s.apps), time.Now()
	s.metrics.census, s.metrics.apps = s.census, s.apps
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Serve accepts proxy connections on ln until ctx ends or Close is called,
// then stops accepting, lets in-flight connections finish for
// limits.drain_timeout and closes the rest. It returns nil after a clean
// shutdown. A Server serves one proxy port: call Serve once (ServeListener
// serves the [[listener]] ports beside it).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	// http.Server reads plain-HTTP proxy requests only (CONNECTs are read
	// by the front door); its timeouts are the [limits] at start, which a
	// reload names as needing a restart for plain HTTP (RestartKeys).
	lim := s.rt.Load().lim
	hs := &http.Server{
		Handler:           s.front(s.proxy),
		ReadHeaderTimeout: lim.HandshakeTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          newStdLogger(s.log, logrus.DebugLevel),
	}
	s.addSelf(ln.Addr())
	defer s.removeSelf(ln.Addr())
	inner := newChanListener(ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(inner) }()

	err := acceptUntilDone(ctx, cancel, ln, func() error { return s.acceptLoop(ctx, ln, inner) })
	inner.Close()

	// Drain: http.Server waits for its own connections; hijacked CONNECT
	// connections are invisible to it, so they are tracked here. Both get
	// limits.drain_timeout, then what is left is closed.
	drain := s.rt.Load().lim.DrainTimeout
	drainCtx, drainCancel := context.WithTimeout(context.Background(), drain)
	defer drainCancel()
	hsDone := make(chan struct{})
	go func() {
		if hs.Shutdown(drainCtx) != nil {
			_ = hs.Close()
		}
		close(hsDone)
	}()
	s.hijacked.shutdown(drain)
	<-hsDone
	s.sniffing.Wait()
	<-serveErr
	s.pool.closeAll() // relays are done: nothing puts connections back now
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Close stops every Serve call; it is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.apps.close()
		s.tickets.stop()
	})
	return nil
}

// acceptLoop admits connections and hands each to a goroutine that sniffs
// for TLS on the proxy port.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener, inner *chanListener) error {
	return s.accept(ctx, ln, "proxy", true, func(c net.Conn) bool {
		s.sniffing.Add(1)
		go func() {
			defer s.sniffing.Done()
			s.sniff(ctx, c, inner)
		}()
		return true
	})
}

func (s *Server) clientAllowed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	return s.Policy().AllowsClient(ta.AddrPort().Addr()) // AllowsClient unmaps
}

// track registers a hijacked connection so shutdown can close it; false
// once shutdown began.
func (s *Server) track(c net.Conn) bool {
	if !s.hijacked.add(c) {
		return false
	}
	s.metrics.active.Inc()
	return true
}

// proxyNames are the default names of the proxy's own certificate.
func proxyNames(listen string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" && !slices.Contains(names, h) {
		names = append([]string{h}, names...)
	}
	return names
}
