package bump

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/http1"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
)

// The front door of the proxy port. An accepted connection is sniffed: a
// TLS record means the app speaks TLS to the proxy itself
// (HTTPS_PROXY=https://…), which is terminated first; then a CONNECT head
// is read by internal/http1, the one HTTP/1.1 parser, and handed to the
// pipeline (connect). Anything else — plain http:// proxy requests, a
// browser pointed at the port — goes to http.Server and goproxy, which
// forward plain HTTP; a CONNECT that arrives there later on a keep-alive
// connection is taken out of it (front) into the same pipeline.

// sniff serves one accepted proxy-port connection up to the pipeline or
// http.Server.
func (s *Server) sniff(ctx context.Context, c net.Conn, inner *chanListener) {
	rt := s.rt.Load()
	c.SetReadDeadline(rt.handshakeDeadline())
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
			v := classify(errSSLv2Hello, nil, rt.leafKey)
			s.log.WithFields(logrus.Fields{logfield.ClientAddr: c.RemoteAddr().String(), logfield.Hint: v.hint}).
				Warn("app sent an SSLv2-format ClientHello to the proxy port: closed")
			c.Close()
			return
		}
	}
	conn := &peekedConn{Conn: c, r: br} // br holds at least the first byte
	if first[0] == 0x16 {
		tc, ok := s.proxyPortTLS(ctx, rt, conn) // logs a failure with a hint
		if !ok {
			return
		}
		br = bufio.NewReaderSize(tc, 1024)
		conn = &peekedConn{Conn: tc, r: br}
		tc.SetReadDeadline(rt.handshakeDeadline())
	}
	// CONNECTs are read here, by internal/http1, also when a 407 asked
	// for credentials and the app sends them on the same connection:
	// http.Server (net/http's parser) only sees connections whose next
	// request is not a CONNECT.
	for {
		b, err := br.Peek(len("CONNECT "))
		if err != nil || string(b) != "CONNECT " {
			break
		}
		if !s.readConnect(rt, conn, br) {
			return
		}
		// The retry is a new request: it is checked under the config in
		// force now (a reload may have renewed the users file), as
		// http.Server's requests are in front.
		rt = s.rt.Load()
		if !s.awaitRetry(ctx, rt, conn, br) {
			return
		}
	}
	conn.SetReadDeadline(time.Time{})
	if !inner.deliver(ctx, conn) {
		conn.Close()
	}
}

// awaitRetry waits, after a 407, for the first byte of the app's next
// request on c as http.Server waits on a keep-alive connection: up to
// [limits] idle_timeout (a person may be typing the password), then the
// handshake timeout for the rest of the head. The connection is not tracked
// yet, so shutdown ends the wait here. It reports false, with c closed, when
// the app sent nothing.
func (s *Server) awaitRetry(ctx context.Context, rt *snapshot, c *peekedConn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(rt.lim.IdleTimeout))
	stop := context.AfterFunc(ctx, func() { c.Close() })
	_, err := br.Peek(1)
	if !stop() || err != nil {
		s.log.WithField(logfield.ClientAddr, c.RemoteAddr().String()).WithError(err).Debug("no request after a 407: closed")
		c.Close()
		return false
	}
	c.SetReadDeadline(rt.handshakeDeadline())
	return true
}

// readConnect reads a CONNECT head with internal/http1 within the
// handshake timeout, checks it (authentication, loops) and starts the
// pipeline. A head that is malformed or ambiguous is answered 400 (431 if
// too large) and the connection closed. It reports true after a 407 that
// leaves the connection open for the credentials, as http.Server does (not
// after a head with Connection: close or a body).
func (s *Server) readConnect(rt *snapshot, c *peekedConn, br *bufio.Reader) (again bool) {
	var h http1.Head
	if err := h.ReadRequest(br, http1.Limits{MaxBytes: rt.lim.MaxHeaderBytes}); err != nil {
		status := http.StatusBadRequest
		if he, ok := err.(*http1.Error); ok {
			status = he.Status
		}
		if !isTimeout(err) && !appClosed(err) {
			writeResponse(c, status, fmt.Sprintf("tlsbridge: malformed CONNECT request: %v\n", err))
		}
		s.log.WithField(logfield.ClientAddr, c.RemoteAddr().String()).WithError(err).Debug("CONNECT head refused: closed")
		c.Close()
		return false
	}
	c.SetReadDeadline(time.Time{})
	req := proxyRequest{
		connect: true,
		target:  string(h.Target),
		remote:  c.RemoteAddr().String(),
		proxy:   c.LocalAddr().String(),
		auth:    string(h.Get("proxy-authorization")),
	}
	user, ans := s.guard(rt, req)
	if ans != nil {
		// A head that announced a body is not kept: the body is no
		// request, and reading it as one would be guessing.
		keep := ans.status == http.StatusProxyAuthRequired && !h.Close && h.RequestBody() == http1.BodyNone
		ans.write(c, !keep)
		if keep {
			return true // the app may retry with credentials
		}
		c.Close()
		return false
	}
	// Nothing pipelined behind the head (the common case): the pipeline
	// reads the connection itself, without the wrapper.
	var client net.Conn = c
	if br.Buffered() == 0 {
		client = c.Conn
	}
	s.connect(rt, client, connectRequest{target: req.target, remote: req.remote, user: user})
	return false
}

// front runs before goproxy for every request http.Server reads: proxy
// authentication and loop refusal, and a CONNECT (one that follows a plain
// request on a keep-alive connection) is taken over into the pipeline.
func (s *Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := s.rt.Load()
		req := proxyRequest{
			connect: r.Method == http.MethodConnect,
			abs:     r.URL.IsAbs(),
			target:  r.URL.Host,
			scheme:  r.URL.Scheme,
			remote:  r.RemoteAddr,
			auth:    r.Header.Get("Proxy-Authorization"),
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			req.proxy = la.String()
		}
		user, ans := s.guard(rt, req)
		if ans != nil {
			if ans.challenge != "" {
				w.Header().Set("Proxy-Authenticate", ans.challenge)
			}
			http.Error(w, strings.TrimSuffix(ans.body, "\n"), ans.status)
			return
		}
		if req.connect {
			hj, ok := w.(http.Hijacker)
			if !ok {
				http.Error(w, "tlsbridge: CONNECT needs HTTP/1.1", http.StatusBadRequest)
				return
			}
			c, rw, err := hj.Hijack()
			if err != nil {
				return
			}
			if rw.Reader.Buffered() > 0 { // a pipelined ClientHello
				c = &peekedConn{Conn: c, r: rw.Reader}
			}
			s.connect(rt, c, connectRequest{target: req.target, remote: req.remote, user: user})
			return
		}
		// Credentials are for tlsbridge, never for the origin.
		r.Header.Del("Proxy-Authorization")
		next.ServeHTTP(w, r)
	})
}

// proxyPortTLS completes the TLS handshake of an app that speaks TLS to the
// proxy port itself (HTTPS_PROXY=https://...) before the proxy protocol
// starts, so a failure is logged here, at Warn with a hint, and not lost in
// http.Server's error log. It reports false, with c closed, on failure.
func (s *Server) proxyPortTLS(ctx context.Context, rt *snapshot, c net.Conn) (*tls.Conn, bool) {
	var hello *clientHello
	names := s.cfg.ProxyNames
	cfg := appFacingConfig(s.appBase, rt.pol.Client, rt.lim, nil, func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return s.cfg.Certs.GetMulti(names, rt.leafKeyFor(s.cfg.Certs, hi))
	})
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = &clientHello{info: hi}
		return nil, nil // go on with cfg
	}
	tc := tls.Server(c, cfg)
	c.SetDeadline(rt.handshakeDeadline())
	err := tc.HandshakeContext(ctx)
	c.SetDeadline(time.Time{})
	if err == nil {
		return tc, true
	}
	tc.Close()
	if ctx.Err() != nil {
		return nil, false // shutting down
	}
	v := classify(err, hello, rt.leafKey)
	s.metrics.failures.WithLabelValues(sideApp, v.reason).Inc()
	f := logrus.Fields{logfield.ClientAddr: c.RemoteAddr().String(), logfield.Listen: c.LocalAddr().String()}
	if hello != nil {
		if hello.info.ServerName != "" {
			f[logfield.SNI] = hello.info.ServerName
		}
		lo, hi := offeredRange(hello.info.SupportedVersions)
		f[logfield.ClientOffered] = versionName(lo) + "-" + versionName(hi)
	}
	hint := v.hint
	switch {
	case strings.Contains(hint, hintTrust):
		hint = strings.Replace(hint, hintTrust, fmt.Sprintf(hintProxyTrust, c.LocalAddr()), 1)
	case hint == "":
		hint = fmt.Sprintf("the app speaks TLS to the proxy port (an https:// proxy URL) and failed its handshake with the proxy's own certificate; "+
			"write the proxy URL with http:// (HTTPS_PROXY=http://%s) unless the app needs TLS to the proxy", c.LocalAddr())
	}
	s.log.WithFields(f).WithField(logfield.Hint, hint).WithError(err).Warn("TLS handshake on the proxy port failed")
	return nil, false
}

// peekedConn serves bytes buffered by a reader over its connection first.
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

// writeResponse writes a complete HTTP/1.1 response that closes the connection.
func writeResponse(w io.Writer, status int, body string) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	_, _ = w.Write(b.Bytes())
}
