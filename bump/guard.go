package bump

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// accept runs an accept loop on ln until ctx ends: temporary errors are
// retried with backoff, clients outside allow_clients are dropped, clients
// over limits.max_connections get a 503 (when busy is set) and are closed, and each
// admitted connection goes to handle, which returns false to stop the loop.
// name labels log lines ("proxy" or "listener[N]").
func (s *Server) accept(ctx context.Context, ln net.Listener, name string, busy bool, handle func(net.Conn) bool) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.WithField(logfield.Rule, name).WithError(err).Warnf("accept: retrying in %v", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		e := s.log.WithFields(logrus.Fields{logfield.ClientAddr: c.RemoteAddr().String(), logfield.Rule: name})
		if !s.clientAllowed(c.RemoteAddr()) {
			e.Warn("client address not in allow_clients: connection refused")
			c.Close()
			continue
		}
		if max := s.rt.Load().lim.MaxConnections; s.active.Add(1) > int64(max) {
			s.active.Add(-1)
			e.Warnf("over limits.max_connections = %d: connection refused", max)
			if busy {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				c.Write(busyResponse(max))
			}
			c.Close()
			continue
		}
		if !handle(&countedConn{Conn: c, active: &s.active}) {
			return nil
		}
	}
}

// acceptUntilDone runs loop (an accept loop on ln) until it returns or ctx
// ends; then ln is closed, cancel is called and loop's error returned once
// it has stopped.
func acceptUntilDone(ctx context.Context, cancel context.CancelFunc, ln net.Listener, loop func() error) error {
	acceptErr := make(chan error, 1)
	go func() { acceptErr <- loop() }()
	var err error
	select {
	case <-ctx.Done():
		ln.Close()
		err = <-acceptErr
	case err = <-acceptErr:
		cancel()
		ln.Close()
	}
	return err
}

// busyResponse is what a proxy client over the connection limit reads.
func busyResponse(max int) []byte {
	body := fmt.Sprintf("tlsbridge: too many connections (limits.max_connections = %d); try again later\n", max)
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// countedConn releases its slot of limits.max_connections when closed.
type countedConn struct {
	net.Conn
	active *atomic.Int64
	once   sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.active.Add(-1) })
	return c.Conn.Close()
}

// NetConn returns the wrapped connection, for half-close.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// proxyRequest is what the front door checks of a proxy request before it
// is served: a CONNECT (target "host:port") or an absolute-URI request.
type proxyRequest struct {
	connect bool
	abs     bool   // an absolute URI (plain-HTTP forwarding)
	scheme  string // of an absolute URI
	target  string // CONNECT host:port, or the URI's host[:port]
	remote  string // the client's address
	proxy   string // the proxy's address the client connected to
	auth    string // Proxy-Authorization
}

// hostPort is the request's destination, with the scheme's default port.
func (r proxyRequest) hostPort() (string, int) {
	def := -1
	switch {
	case r.connect:
	case r.scheme == "https":
		def = 443
	default:
		def = 80
	}
	return splitTarget(r.target, def)
}

// answer is a refusal the front door sends instead of serving a request.
type answer struct {
	status    int
	challenge string // Proxy-Authenticate, for a 407
	body      string
}

// write sends the answer; the connection stays open unless closing.
func (a *answer) write(c net.Conn, closing bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", a.status, http.StatusText(a.status), len(a.body))
	if a.challenge != "" {
		fmt.Fprintf(&b, "Proxy-Authenticate: %s\r\n", a.challenge)
	}
	if closing || a.status != http.StatusProxyAuthRequired {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(a.body)
	c.Write([]byte(b.String()))
}

// guard checks a proxy request under rt: proxy authentication, then loop
// refusal. It returns the authenticated user (which keys the upstream pool:
// one user's upstream connections never carry another's requests), or the
// answer that refuses the request, logged and counted.
func (s *Server) guard(rt *snapshot, r proxyRequest) (user string, refusal *answer) {
	pol := rt.pol
	if pol.Auth.Enabled() {
		var res authResult
		user, res = s.authorized(&pol.Auth, r.auth, r.remote)
		if res != authOK {
			return "", s.askCredentials(r, &pol.Auth, user, res)
		}
	}
	if r.connect || r.abs {
		host, port := r.hostPort()
		if s.isSelf(host, port) {
			s.refused(r, "loop", http.StatusLoopDetected, "request aimed at tlsbridge itself: refused (it would loop)")
			return "", &answer{status: http.StatusLoopDetected,
				body: fmt.Sprintf("tlsbridge: %s is tlsbridge's own address; a request through the proxy to itself would loop\n", r.target)}
		}
	}
	return user, nil
}

// authorized checks Basic proxy credentials (RFC 7617) against the bcrypt
// hashes of [auth] users_file, the way squid's basic auth with
// credentialsttl does, plus what squid leaves to fail2ban:
//
//   - A bcrypt check costs tens of milliseconds by design, so a verified
//     (user, password) pair is remembered for credTTL as an HMAC under a
//     per-process random key (never the password, nor a plain hash of it
//     that a memory dump would let anyone brute-force at SHA-256 speed).
//     The stored hash is part of the digest: a changed hash in a reloaded
//     users file invalidates it.
//   - An unknown user costs one bcrypt comparison against a dummy hash of
//     the file's cost, like a known user with a wrong password, so user
//     names cannot be told apart by response time (issue 13 measured
//     0.4 ms against 55 ms).
//   - Past authFailLimit failed checks from one client address (an IPv6
//     client's /64) within authFailWindow, every request from it is
//     answered 407 at once, cached credentials included: checking them
//     would tell a limited guesser when a guess is right.
//
// Concurrent checks of the same credentials share one bcrypt comparison,
// so an app that opens 50 connections at once costs one, not 50; and at
// most GOMAXPROCS-1 comparisons run at once, so checking passwords never
// takes every core from the connections already authenticated.
func (s *Server) authorized(a *policy.Auth, authorization, remote string) (user string, res authResult) {
	scheme, cred, found := strings.Cut(authorization, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", authMissing
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", authMissing
	}
	user, pass, found := strings.Cut(string(raw), ":")
	if !found {
		return "", authMissing
	}
	hash := a.Users[user]
	compare := func() bool {
		// Not cut short when the client leaves: requests with the same
		// credentials may be waiting for this result. The wait is bounded:
		// at most authFailLimit checks per address are pending.
		s.auth.acquire()
		defer s.auth.release()
		if hash == nil {
			bcrypt.CompareHashAndPassword(s.auth.dummyHash(a), []byte(pass)) // always fails; spends the time
			return false
		}
		return bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
	}
	res, first := s.auth.check(clientKey(remote), s.auth.digest(user, pass, hash), time.Now(), compare)
	switch res {
	case authBad:
		s.metrics.authFailed("bad")
	case authLimited:
		s.metrics.authFailed("limited")
		if first {
			s.log.WithField(logfield.ClientAddr, remote).Warnf(
				"proxy authentication: %d failed checks from %s within %v: its requests are answered 407 without checking credentials for the rest of that time (counted in tlsbridge_auth_failures_total{result=\"limited\"}; logged once per address and interval)",
				authFailLimit, clientKey(remote), authFailWindow)
		}
	}
	return user, res
}

// authResult is the outcome of a proxy authentication check.
type authResult int

const (
	authOK      authResult = iota
	authMissing            // no Basic credentials, or malformed ones
	authBad                // wrong password or unknown user
	authLimited            // too many failures from the client address
)

// askCredentials is the 407 with a Proxy-Authenticate challenge. A limited
// client gets no access line per request (a flood would write one per
// attempt); authorized logged it once per interval, and the metrics count it.
func (s *Server) askCredentials(r proxyRequest, a *policy.Auth, user string, res authResult) *answer {
	switch res {
	case authLimited:
		s.metrics.access(&connInfo{action: "auth", status: http.StatusProxyAuthRequired})
	case authBad:
		s.refused(r, "auth", http.StatusProxyAuthRequired, fmt.Sprintf("proxy authentication failed for user %q", user))
	default:
		s.refused(r, "auth", http.StatusProxyAuthRequired, "proxy authentication missing")
	}
	proxy := r.proxy
	if proxy == "" {
		proxy = "PROXY:PORT"
	}
	return &answer{
		status:    http.StatusProxyAuthRequired,
		challenge: `Basic realm="` + a.Realm + `", charset="UTF-8"`,
		body:      "tlsbridge: proxy authentication required: put the user and password in the proxy URL, e.g. HTTPS_PROXY=http://user:password@" + proxy + "\n",
	}
}

// refused writes the access line (and counts the connection) of a request
// the front door refuses before it is served.
func (s *Server) refused(r proxyRequest, action string, status int, msg string) {
	host, port := r.hostPort()
	ci := &connInfo{id: s.connID.Add(1), start: time.Now(), clientAddr: r.remote, host: host, port: port, action: action, status: status}
	s.metrics.access(ci)
	s.log.WithFields(ci.fields()).Warn("access: " + msg)
}

// Proxy authentication limits (see authorized).
const (
	// credTTL is how long a verified (user, password) pair is accepted
	// without bcrypt: squid's credentialsttl default (1 hour).
	credTTL = time.Hour
	// credCacheMax bounds the remembered pairs; only verified pairs get
	// in, so it is reached only with that many users (or reloads that
	// change hashes), and then the cache starts over.
	credCacheMax = 1024
	// authFailLimit failed checks from one address within authFailWindow
	// make it answer 407 at once until the window ends: 10 a minute is
	// plenty for a person mistyping and useless for guessing.
	authFailLimit  = 10
	authFailWindow = time.Minute
	// authClientsMax bounds the per-address failure table. When it is
	// full of live windows, new addresses share one window (overflowKey):
	// a spread-out flood is then limited as a whole.
	authClientsMax = 4096
	overflowKey    = "overflow"
)

// authGuard is a Server's proxy-authentication state: the HMAC key, the
// verified-credentials cache, the per-address failure windows, the checks
// in flight, and the dummy hashes for unknown users. The zero value is
// ready to use.
type authGuard struct {
	initOnce sync.Once
	key      []byte        // HMAC-SHA256 key of the digests, random per process
	slots    chan struct{} // one token per bcrypt comparison allowed to run

	mu       sync.Mutex
	verified map[credDigest]time.Time // digest -> expiry
	clients  map[string]*failWindow   // clientKey -> window
	inflight map[credDigest]*authCall

	dummyMu  sync.Mutex
	dummyFor *policy.Auth   // the Auth whose cost dummyCost is
	dummyAt  int            // its highest bcrypt cost
	dummies  map[int][]byte // cost -> hash of a random password
}

// credDigest identifies a (user, password, stored hash) triple.
type credDigest [sha256.Size]byte

// failWindow counts one client address's failed checks since start.
type failWindow struct {
	start    time.Time
	failures int
	pending  int  // checks of this address running now
	logged   bool // the limit was logged in this window
}

// authCall is a bcrypt check that requests with the same credentials wait for.
type authCall struct {
	done chan struct{}
	res  authResult
}

func (g *authGuard) init() {
	g.initOnce.Do(func() {
		g.key = make([]byte, 32)
		rand.Read(g.key) // never fails (crypto/rand, Go 1.24)
		g.slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))
	})
}

// acquire waits for a bcrypt slot.
func (g *authGuard) acquire() {
	g.init()
	g.slots <- struct{}{}
}

// release frees the slot taken by acquire.
func (g *authGuard) release() { <-g.slots }

// digest is HMAC-SHA256(key, user, password, hash), each length-prefixed
// so that no two triples share an encoding.
func (g *authGuard) digest(user, pass string, hash []byte) credDigest {
	g.init()
	m := hmac.New(sha256.New, g.key)
	for _, f := range [][]byte{[]byte(user), []byte(pass), hash} {
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		m.Write(f)
	}
	var d credDigest
	m.Sum(d[:0])
	return d
}

// check decides one request's credentials: limited if the client is over
// its failure limit, OK if d was verified within credTTL, else the result
// of compare (a bcrypt comparison), run once for all concurrent requests
// with the same d. first reports the request that found the client
// limited first in its window, for the once-per-interval log line.
func (g *authGuard) check(client string, d credDigest, now time.Time, compare func() bool) (res authResult, first bool) {
	g.mu.Lock()
	w := g.clients[client]
	if w != nil && now.Sub(w.start) >= authFailWindow {
		w.start, w.failures, w.logged = now, 0, false
	}
	if w != nil && w.failures >= authFailLimit {
		return authLimited, g.limitedLocked(w)
	}
	if exp, ok := g.verified[d]; ok {
		if now.Before(exp) {
			g.mu.Unlock()
			return authOK, false
		}
		delete(g.verified, d)
	}
	if c := g.inflight[d]; c != nil {
		g.mu.Unlock()
		<-c.done
		return c.res, false
	}
	if w == nil {
		w = g.windowLocked(client, now)
	}
	// Checks still running count against the limit too, or 64 concurrent
	// guesses would all reach bcrypt before the first failure is counted.
	if w.failures+w.pending >= authFailLimit {
		return authLimited, g.limitedLocked(w)
	}
	w.pending++
	c := &authCall{done: make(chan struct{})}
	if g.inflight == nil {
		g.inflight = make(map[credDigest]*authCall)
	}
	g.inflight[d] = c
	g.mu.Unlock()

	c.res = authBad
	ok := compare()

	g.mu.Lock()
	w.pending--
	delete(g.inflight, d)
	if ok {
		c.res = authOK
		if g.verified == nil || len(g.verified) >= credCacheMax {
			g.verified = make(map[credDigest]time.Time) // start over rather than grow
		}
		g.verified[d] = now.Add(credTTL)
	} else {
		w.failures++
	}
	g.mu.Unlock()
	close(c.done)
	return c.res, false
}

// limitedLocked unlocks g.mu and reports whether w's limit is news in its
// window (to be logged).
func (g *authGuard) limitedLocked(w *failWindow) bool {
	first := !w.logged
	w.logged = true
	g.mu.Unlock()
	return first
}

// windowLocked returns client's failure window, making one; a full table
// first drops the windows that ended, then falls back to overflowKey.
func (g *authGuard) windowLocked(client string, now time.Time) *failWindow {
	if g.clients == nil {
		g.clients = make(map[string]*failWindow)
	}
	if w := g.clients[client]; w != nil {
		return w
	}
	if len(g.clients) >= authClientsMax {
		for k, w := range g.clients {
			if w.pending == 0 && now.Sub(w.start) >= authFailWindow {
				delete(g.clients, k)
			}
		}
		if len(g.clients) >= authClientsMax {
			client = overflowKey
			if w := g.clients[client]; w != nil {
				return w
			}
		}
	}
	w := &failWindow{start: now}
	g.clients[client] = w
	return w
}

// dummyHash returns a bcrypt hash of a random password at the highest cost
// in a's users file, made once per cost, for unknown users to be compared
// against. Making it costs one bcrypt run itself, so only the first unknown
// user after a start (or a reload that changes the cost) pays twice.
func (g *authGuard) dummyHash(a *policy.Auth) []byte {
	g.dummyMu.Lock()
	defer g.dummyMu.Unlock()
	if g.dummyFor != a {
		g.dummyFor, g.dummyAt = a, bcrypt.DefaultCost
		first := true
		for _, h := range a.Users {
			if c, err := bcrypt.Cost(h); err == nil && (first || c > g.dummyAt) {
				g.dummyAt, first = c, false
			}
		}
	}
	if h := g.dummies[g.dummyAt]; h != nil {
		return h
	}
	pass := make([]byte, 16)
	rand.Read(pass)
	h, err := bcrypt.GenerateFromPassword(pass, g.dummyAt)
	if err != nil { // only for a cost outside bcrypt's range, which the loader refuses
		return nil
	}
	if g.dummies == nil {
		g.dummies = make(map[int][]byte)
	}
	g.dummies[g.dummyAt] = h
	return h
}

// clientKey is the address failures are counted by: the IP of "ip:port",
// or the /64 of an IPv6 client, which holds the whole /64.
func clientKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// RefuseOwnAddr adds a, the address of a listener of this process that the
// Server does not accept on itself, to the addresses that requests through
// the proxy are refused for with 508 Loop Detected, as the proxy port
// (Serve) and each [[listener]] (ServeListener) already are. The caller
// opens the [admin] listener (it serves MetricsHandler, so it comes after
// New) and must add it here before the proxy serves: otherwise an app can
// reach /metrics and /debug/pprof/ through the proxy, with a CONNECT or a
// plain GET, as soon as connect_ports lists the admin port (issue 13).
func (s *Server) RefuseOwnAddr(a net.Addr) { s.addSelf(a) }

// addSelf records an address tlsbridge listens on, so requests to it are
// refused instead of looping.
func (s *Server) addSelf(a net.Addr) {
	if ta, ok := a.(*net.TCPAddr); ok {
		s.selfMu.Lock()
		s.self = append(s.self, ta)
		s.selfMu.Unlock()
	}
}

// removeSelf forgets an address whose listener closed (a [[listener]]
// removed by a reload), so the port may be used as a destination again.
func (s *Server) removeSelf(a net.Addr) {
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	for i, ta := range s.self {
		if ta.String() == a.String() {
			s.self = slices.Delete(s.self, i, i+1)
			return
		}
	}
}

// isSelf reports whether host:port names one of tlsbridge's own listeners
// without a DNS lookup (loopback names and literals); dial catches the rest.
// "localhost." is localhost (a trailing dot only makes the name absolute),
// and 0.0.0.0 or [::] as a destination reaches this host on Linux.
func (s *Server) isSelf(host string, port int) bool {
	host = strings.TrimSuffix(host, ".")
	ip := net.ParseIP(host)
	local := strings.EqualFold(host, "localhost") || ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	for _, a := range s.self {
		if a.Port != port {
			continue
		}
		if local || ip != nil && (ip.Equal(a.IP) || a.IP.IsUnspecified()) {
			return true
		}
	}
	return false
}

// errLoop is a dial that reached one of tlsbridge's own listeners.
var errLoop = errors.New("the address is tlsbridge's own listener; forwarding to it would loop")

// dial opens an upstream TCP connection and refuses one that reached
// tlsbridge itself (a DNS name or a rule address that points back here).
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := s.cfg.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok && s.isSelf(ra.IP.String(), ra.Port) {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, errLoop)
	}
	return c, nil
}
