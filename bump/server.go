package bump

import (
	"bufio"
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
	"github.com/tlsbridge/tlsbridge/internal/logfield"
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

	// HandshakeTimeout bounds the time from accepting a connection to a
	// complete request line, and from CONNECT to a complete app-facing TLS
	// handshake. If zero, 10 s.
	HandshakeTimeout time.Duration

	// DialTimeout bounds the upstream TCP connect plus TLS handshake.
	// If zero, 15 s.
	DialTimeout time.Duration

	// IdleTimeout closes tunnels and bumped connections with no traffic
	// either way for this long, and idle keep-alive proxy connections.
	// If zero, 5 minutes.
	IdleTimeout time.Duration

	// MaxConnections bounds concurrent app connections on the proxy port
	// and listeners together; more are answered 503 and closed. If zero, 4096.
	MaxConnections int

	// MaxHeaderBytes bounds a proxy request's header. If zero, 64 KiB.
	MaxHeaderBytes int

	// DrainTimeout is how long Serve waits for in-flight connections after
	// its context ends before it closes them. If zero, 5 s.
	DrainTimeout time.Duration

	// Dial opens upstream TCP connections. If nil, a net.Dialer. tlsbridge
	// never uses HTTP_PROXY/HTTPS_PROXY from its own environment.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// LeafMints, if non-nil, is exported as tlsbridge_cert_mint_seconds;
	// its Observe must be the OnMint hook of Certs. If nil, mint times are
	// not exported (the cache's counters still are).
	LeafMints *LeafMints
}

// Server is the proxy: an HTTP proxy front end (goproxy) whose CONNECT
// requests are dispatched by policy to deny, tunnel or bump.
type Server struct {
	cfg     Config
	log     *logrus.Entry
	policy  atomic.Pointer[policy.Policy]
	proxy   *goproxy.ProxyHttpServer
	appBase *tls.Config
	metrics *metrics // see metrics.go

	upstreamMu   sync.Mutex
	upstreamBase map[*policy.Rule]*tls.Config

	connID atomic.Uint64
	pool   upstreamPool // idle upstream connections (reuse.go)
	active atomic.Int64 // admitted app connections, for MaxConnections

	auth authGuard // proxy authentication (guard.go)

	selfMu sync.Mutex
	self   []*net.TCPAddr // addresses tlsbridge listens on (loop refusal)

	hijacked *connSet       // CONNECT connections taken over from http.Server
	sniffing sync.WaitGroup // accepted connections not yet handed to http.Server
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
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 4096
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
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
	base, err := newAppFacingBase()
	if err != nil {
		return nil, fmt.Errorf("bump: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:          cfg,
		log:          log,
		appBase:      base,
		upstreamBase: make(map[*policy.Rule]*tls.Config),
		hijacked:     newConnSet(),
		ctx:          ctx,
		cancel:       cancel,
	}
	s.policy.Store(cfg.Policy)
	s.proxy = s.newProxy()
	s.metrics = newMetrics(cfg.Certs, cfg.LeafMints)
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Policy returns the policy in force for new connections.
func (s *Server) Policy() *policy.Policy { return s.policy.Load() }

// SetPolicy swaps in a new policy for new connections; connections in flight
// keep the rule they matched.
func (s *Server) SetPolicy(p *policy.Policy) {
	if p == nil {
		panic("bump: SetPolicy(nil)")
	}
	s.policy.Store(p)
	s.upstreamMu.Lock()
	s.upstreamBase = make(map[*policy.Rule]*tls.Config)
	s.upstreamMu.Unlock()
}

// Serve accepts connections on ln until ctx ends or Close is called, then
// stops accepting, lets in-flight connections finish for DrainTimeout and
// closes the rest. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	hs := &http.Server{
		Handler:           s.front(s.proxy),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          newStdLogger(s.log, logrus.DebugLevel),
	}
	s.addSelf(ln.Addr())
	inner := newChanListener(ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(inner) }()

	err := acceptUntilDone(ctx, cancel, ln, func() error { return s.acceptLoop(ctx, ln, inner) })
	inner.Close()

	// Drain: http.Server waits for its own connections; hijacked CONNECT
	// connections are invisible to it, so they are tracked here. Both get
	// DrainTimeout, then what is left is closed.
	drainCtx, drainCancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer drainCancel()
	hsDone := make(chan struct{})
	go func() {
		if hs.Shutdown(drainCtx) != nil {
			_ = hs.Close()
		}
		close(hsDone)
	}()
	s.hijacked.shutdown(s.cfg.DrainTimeout)
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
	})
	return nil
}

// acceptLoop admits connections and hands each to a goroutine that sniffs
// for TLS on the proxy port.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener, inner *chanListener) error {
	busy := busyResponse(s.cfg.MaxConnections)
	return s.accept(ctx, ln, "proxy", busy, func(c net.Conn) bool {
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

// sniff reads the first byte: a TLS handshake record means the app speaks
// TLS to the proxy itself (https_proxy=https://...), so it is terminated
// here with the proxy's own certificate before the proxy protocol starts.
func (s *Server) sniff(ctx context.Context, c net.Conn, inner *chanListener) {
	c.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(c, 1024)
	first, err := br.Peek(1)
	if err != nil {
		s.log.WithFields(logrus.Fields{logfield.ClientAddr: c.RemoteAddr().String()}).
			WithError(err).Debug("client sent nothing: closed")
		c.Close()
		return
	}
	if first[0]&0x80 != 0 {
		if b, err := br.Peek(4); err == nil && isSSLv2Hello(b) {
			s.log.WithFields(logrus.Fields{logfield.ClientAddr: c.RemoteAddr().String(), logfield.Hint: clientHint(errSSLv2Hello, nil)}).
				Warn("app sent an SSLv2-format ClientHello to the proxy port: closed")
			c.Close()
			return
		}
	}
	c.SetReadDeadline(time.Time{})
	var conn net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == 0x16 {
		tc, ok := s.proxyPortTLS(ctx, conn) // connect.go: logs a failure with a hint
		if !ok {
			return
		}
		conn = tc
	}
	if !inner.deliver(ctx, conn) {
		conn.Close()
	}
}

// proxyTLSConfig is the config for TLS on the proxy port.
func (s *Server) proxyTLSConfig() *tls.Config {
	names := s.cfg.ProxyNames
	return appFacingConfig(s.appBase, s.Policy().Client, nil, func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return s.cfg.Certs.GetMulti(names, s.leafKeyFor(hi))
	})
}

// leafKeyFor picks the leaf key type for an app's ClientHello: the [ca]
// leaf_key of the policy in force (a reload changes it), or for "auto"
// ECDSA (a signature costs 0.03 ms) when the app supports it and RSA
// (0.7 ms) when it does not.
func (s *Server) leafKeyFor(hi *tls.ClientHelloInfo) ca.KeyType {
	if kt := s.Policy().CA.LeafKey; kt != policy.LeafKeyAuto {
		return kt
	}
	return s.cfg.Certs.KeyTypeFor(hi)
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

// peekedConn serves bytes buffered by the sniffing reader first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// NetConn returns the wrapped connection, for half-close.
func (c *peekedConn) NetConn() net.Conn { return c.Conn }

// chanListener feeds sniffed connections to http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(ctx context.Context, c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// proxyNames are the default names of the proxy's own certificate.
func proxyNames(listen string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" && !slices.Contains(names, h) {
		names = append([]string{h}, names...)
	}
	return names
}
