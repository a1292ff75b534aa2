package bump

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/http1"
	"github.com/tlsbridge/tlsbridge/policy"
)

// The parent proxy ([upstream] proxy): the dial stage's TCP connection to
// the server is an HTTP CONNECT tunnel through the parent, and
// tlsbridge's own verified TLS runs inside it, so tunnels, bumps,
// listeners and `check` all go through the parent the same way (dialTarget
// is the one place). The parent is dialled with the Server's dial, whose
// loop guard refuses a parent that is tlsbridge itself.

// parentHeadLimits bound the parent's answer to a CONNECT: a status line
// and a few fields (squid sends 2 to 6). A parent that sends more is
// broken or hostile; its answer is refused, not buffered.
var parentHeadLimits = http1.Limits{MaxBytes: 16 << 10, MaxFields: 64}

// parentError is a CONNECT through the parent proxy that did not give a
// tunnel: the parent could not be reached or read (err), or it answered
// with a status other than 2xx.
type parentError struct {
	proxy  *policy.ParentProxy
	target string // the "host:port" the parent was asked to connect to
	status int    // the parent's status; 0 when it gave none
	reason string // its reason phrase
	err    error  // the dial or read failure, nil for a status
}

func (e *parentError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("parent proxy %s: CONNECT %s: %v", e.proxy, e.target, e.err)
	}
	return fmt.Sprintf("parent proxy %s: CONNECT %s: %d %s", e.proxy, e.target, e.status, e.reason)
}

func (e *parentError) Unwrap() error { return e.err }

// connectParent opens a tunnel to addr through the parent p within ctx:
// TCP to the parent, "CONNECT addr HTTP/1.1" with p's Basic credentials,
// and the parent's answer read by the one HTTP/1.x parser tlsbridge has
// (internal/http1), bounded by parentHeadLimits. Only a 2xx opens the
// tunnel (RFC 9110 9.3.6); bytes the parent sent after its head belong to
// the server and are read first.
func connectParent(ctx context.Context, dial dialFunc, p *policy.ParentProxy, addr string) (net.Conn, error) {
	c, err := dial(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, &parentError{proxy: p, target: addr, err: err}
	}
	// The caller's timeout bounds the exchange; cancelling ctx ends it.
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if p.Authorization != "" {
		req += "Proxy-Authorization: " + p.Authorization + "\r\n"
	}
	req += "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, &parentError{proxy: p, target: addr, err: ctxErr(ctx, err)}
	}
	br := bufio.NewReaderSize(c, 4096)
	var h http1.Head
	if err := h.ReadResponse(br, parentHeadLimits); err != nil {
		c.Close()
		return nil, &parentError{proxy: p, target: addr, err: ctxErr(ctx, err)}
	}
	if h.Status < 200 || h.Status > 299 {
		c.Close()
		return nil, &parentError{proxy: p, target: addr, status: h.Status, reason: string(h.Reason)}
	}
	if !stop() || c.SetDeadline(time.Time{}) != nil {
		c.Close()
		return nil, &parentError{proxy: p, target: addr, err: ctx.Err()}
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// ctxErr is ctx's error when ctx ended (the read failed because of it),
// else err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// bufferedConn is a tunnel whose first bytes were read with the parent's
// answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn is the TCP connection, for closeWrite.
func (c *bufferedConn) NetConn() net.Conn { return c.Conn }

// setParentAuth gives an http:// request sent to the parent p in absolute
// form (plain forwarding, AIA fetches) p's credentials; a CONNECT carries
// them in connectParent. Nothing for https:// (tunnelled by
// connectParent) or without credentials.
func setParentAuth(req *http.Request, p *policy.ParentProxy) {
	if p != nil && p.Authorization != "" && req.URL.Scheme == "http" {
		req.Header.Set("Proxy-Authorization", p.Authorization)
	}
}

// proxyFunc is the http.Transport Proxy of a rule with a parent: every
// request given to it goes to the parent in absolute form (http:// only:
// newTransport and the AIA fetcher tunnel https:// themselves); nil
// without a parent. The parent's credentials are set by setParentAuth,
// never put in the URL.
func proxyFunc(p *policy.ParentProxy) func(*http.Request) (*url.URL, error) {
	if p == nil {
		return nil
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		// The loader built p.URL from a parsed URL.
		panic("bump: parent proxy URL " + p.URL + ": " + err.Error())
	}
	return http.ProxyURL(u)
}

// parentVerdict explains a CONNECT through the parent that gave no tunnel.
// The fixes name proxy and proxy_auth_file in the section that sets the
// proxy (p.Section), where the loader accepts them.
func (e *upstreamError) parentVerdict(pe *parentError) verdict {
	p := pe.proxy
	where := section(p.Section, "upstream")
	v := verdict{reason: reasonParentProxy, status: http.StatusBadGateway}
	fixProxy := fmt.Sprintf("fix `proxy = %q` in %s", p.URL, where)
	switch {
	case errors.Is(pe.err, errLoop):
		v.status = http.StatusLoopDetected
		v.cause = fmt.Sprintf("The parent proxy %s is tlsbridge's own listener; going through it would loop.", p)
		v.fix = fmt.Sprintf("Name the real parent proxy: %s.", fixProxy)
	case pe.status == http.StatusProxyAuthRequired && p.Authorization != "":
		v.cause = fmt.Sprintf("The parent proxy %s refused the CONNECT to %s with 407: it does not accept the credentials in %s.", p, pe.target, p.AuthFile)
		v.fix = fmt.Sprintf("Correct user:password in %s (one line, mode 0600) and reload tlsbridge (kill -HUP).", p.AuthFile)
	case pe.status == http.StatusProxyAuthRequired:
		v.cause = fmt.Sprintf("The parent proxy %s refused the CONNECT to %s with 407: it requires credentials and tlsbridge has none for it.", p, pe.target)
		v.fix = fmt.Sprintf("Put user:password on one line in a file only tlsbridge's user can read (chmod 600) and set `proxy_auth_file = \"proxy-auth.txt\"` in %s.", where)
	case pe.status == http.StatusForbidden:
		v.cause = fmt.Sprintf("The parent proxy %s refused the CONNECT to %s with 403: its access rules do not allow this destination (squid, for one, allows CONNECT to port 443 only by default).", p, pe.target)
		v.fix = fmt.Sprintf("Ask the parent proxy's operator to allow CONNECT to %s; if the server is reachable without the parent, %s.", pe.target, e.setUpstream("proxy", `"direct"`, true))
	case pe.status == http.StatusGatewayTimeout:
		v.reason, v.status = reasonTimeout, http.StatusGatewayTimeout
		v.cause = fmt.Sprintf("The parent proxy %s timed out connecting to %s (it answered 504).", p, pe.target)
		v.fix = fmt.Sprintf("Check that %s is reachable from the parent proxy; the parent's own logs say why it was not.", pe.target)
	case pe.status != 0:
		v.cause = fmt.Sprintf("The parent proxy %s could not connect to %s: it answered %d %s.", p, pe.target, pe.status, pe.reason)
		v.fix = fmt.Sprintf("Check the host name and port as the parent proxy sees them (its logs say why); if the server is reachable without the parent, %s.", e.setUpstream("proxy", `"direct"`, true))
	case errors.Is(pe.err, context.DeadlineExceeded) || isTimeout(pe.err):
		v.reason, v.status = reasonTimeout, http.StatusGatewayTimeout
		v.cause = fmt.Sprintf("The parent proxy %s did not open a tunnel to %s in time: %v.", p, pe.target, pe.err)
		v.fix = fmt.Sprintf("Check that the parent proxy is up and answers CONNECT at %s, or %s.", p.Addr, fixProxy)
	case isParentDial(pe.err):
		v.cause = fmt.Sprintf("tlsbridge could not connect to the parent proxy %s: %v.", p, pe.err)
		v.fix = fmt.Sprintf("Check that the parent proxy is up at %s, or %s.", p.Addr, fixProxy)
	default:
		v.cause = fmt.Sprintf("The parent proxy %s did not answer the CONNECT to %s with an HTTP response tlsbridge accepts: %v.", p, pe.target, pe.err)
		v.fix = fmt.Sprintf("Check that %s is an HTTP proxy port (not SOCKS, not TLS), or %s.", p.Addr, fixProxy)
	}
	return v
}

// isParentDial reports an error of the TCP connect to the parent itself
// (refused, unreachable, a name that does not resolve), as opposed to a
// failure reading its answer.
func isParentDial(err error) bool {
	var oe *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) || errors.As(err, &oe) && oe.Op == "dial"
}
