package bump

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
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
// over limits.max_connections get busy (if not nil) and are closed, and each
// admitted connection goes to handle, which returns false to stop the loop.
// name labels log lines ("proxy" or "listener[N]").
func (s *Server) accept(ctx context.Context, ln net.Listener, name string, busy []byte, handle func(net.Conn) bool) error {
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
		if max := s.cfg.MaxConnections; s.active.Add(1) > int64(max) {
			s.active.Add(-1)
			e.Warnf("over limits.max_connections = %d: connection refused", max)
			if busy != nil {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				c.Write(busy)
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

// front runs before goproxy for every proxy request: proxy authentication,
// loop refusal, and keeping bytes pipelined behind a CONNECT.
func (s *Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pol := s.Policy()
		if pol.Auth.Enabled() {
			user, ok := s.authorized(&pol.Auth, r)
			if !ok {
				s.askCredentials(w, r, &pol.Auth, user)
				return
			}
			// Credentials are for tlsbridge, never for the origin.
			r.Header.Del("Proxy-Authorization")
			// The user keys the upstream pool: one user's upstream
			// connections never carry another's requests.
			r = r.WithContext(context.WithValue(r.Context(), proxyUserKey{}, user))
		}
		if r.Method == http.MethodConnect || r.URL.IsAbs() {
			host, port := splitTarget(r.URL.Host, defaultPort(r))
			if s.isSelf(host, port) {
				s.refused(r, host, port, "loop", http.StatusLoopDetected, "request aimed at tlsbridge itself: refused (it would loop)")
				http.Error(w, fmt.Sprintf("tlsbridge: %s is tlsbridge's own address; a request through the proxy to itself would loop", r.URL.Host), http.StatusLoopDetected)
				return
			}
		}
		if h, ok := w.(http.Hijacker); ok && r.Method == http.MethodConnect {
			w = pipelinedHijacker{ResponseWriter: w, h: h}
		}
		next.ServeHTTP(w, r)
	})
}

// proxyUserKey carries the authenticated proxy user in a request's context.
type proxyUserKey struct{}

func defaultPort(r *http.Request) int {
	if r.Method == http.MethodConnect {
		return -1
	}
	if r.URL.Scheme == "https" {
		return 443
	}
	return 80
}

// pipelinedHijacker hands goproxy a connection that serves the bytes an app
// sent right behind its CONNECT (a pipelined ClientHello): goproxy discards
// the bufio.Reader that http.Server returns from Hijack.
type pipelinedHijacker struct {
	http.ResponseWriter
	h http.Hijacker
}

func (p pipelinedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := p.h.Hijack()
	if err != nil || rw.Reader.Buffered() == 0 {
		return c, rw, err
	}
	return &peekedConn{Conn: c, r: rw.Reader}, rw, nil
}

// authorized checks Basic proxy credentials (RFC 7617) against the bcrypt
// hashes of [auth] users_file. A bcrypt check costs tens of milliseconds by
// design, so verified credentials are remembered (as a SHA-256 of user,
// password and hash: a changed hash invalidates them) for later requests.
func (s *Server) authorized(a *policy.Auth, r *http.Request) (user string, ok bool) {
	scheme, cred, found := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", false
	}
	user, pass, found := strings.Cut(string(raw), ":")
	hash := a.Users[user]
	if !found || hash == nil {
		return user, false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass + "\x00" + string(hash)))
	if s.authCache.has(key) {
		return user, true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return user, false
	}
	s.authCache.add(key)
	return user, true
}

// askCredentials answers 407 with a Proxy-Authenticate challenge.
func (s *Server) askCredentials(w http.ResponseWriter, r *http.Request, a *policy.Auth, user string) {
	host, port := splitTarget(r.URL.Host, defaultPort(r))
	msg := "proxy authentication missing"
	if user != "" {
		msg = fmt.Sprintf("proxy authentication failed for user %q", user)
	}
	s.refused(r, host, port, "auth", http.StatusProxyAuthRequired, msg)
	w.Header().Set("Proxy-Authenticate", `Basic realm="`+a.Realm+`", charset="UTF-8"`)
	http.Error(w, "tlsbridge: proxy authentication required: put the user and password in the proxy URL, e.g. HTTPS_PROXY=http://user:password@"+r.Host, http.StatusProxyAuthRequired)
}

// refused writes the access line (and counts the connection) of a request
// the front refuses before goproxy sees it.
func (s *Server) refused(r *http.Request, host string, port int, action string, status int, msg string) {
	ci := &connInfo{id: s.connID.Add(1), start: time.Now(), clientAddr: r.RemoteAddr, host: host, port: port, action: action, status: status}
	s.metrics.access(ci)
	s.log.WithFields(ci.fields()).Warn("access: " + msg)
}

// credCache is a bounded set of verified credential digests.
type credCache struct {
	mu sync.Mutex
	m  map[[32]byte]struct{}
}

const credCacheMax = 1024

func (c *credCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

func (c *credCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= credCacheMax {
		c.m = make(map[[32]byte]struct{}) // start over rather than grow
	}
	c.m[k] = struct{}{}
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
