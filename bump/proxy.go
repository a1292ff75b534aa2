package bump

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// newProxy configures goproxy for what it still does: forwarding plain
// http:// proxy requests (and https:// absolute URIs), each through the
// transport of the rule it matched (see newTransport). CONNECTs never reach
// it: the front door hands them to the pipeline.
func (s *Server) newProxy() *goproxy.ProxyHttpServer {
	p := goproxy.NewProxyHttpServer()
	p.Logger = printfLogger{s.log}
	// Verbose stays off even at debug level: goproxy's Logf lines are its
	// internals ("on 0th handler: &{3 0x8cc660 <nil>}", "Running 1 CONNECT
	// handlers"), which tell a user nothing the access line does not. Its
	// Warnf lines still reach printfLogger.
	p.Verbose = false
	// goproxy's default transport skips verification and honours
	// HTTPS_PROXY; every request gets a rule's transport instead (see
	// onPlainRequest), and this one refuses, should one ever be missed.
	p.Tr = &http.Transport{Proxy: nil, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("bump: plain request without a rule's transport")
	}}
	p.ConnectDial = nil
	p.NonproxyHandler = http.HandlerFunc(s.serveNonProxy)
	p.OnRequest().DoFunc(s.onPlainRequest)
	p.OnResponse().DoFunc(s.onPlainResponse)
	return p
}

// newTransport is the plain-HTTP transport of one rule. Every upstream
// connection it opens goes through the dial stage's two functions, like a
// CONNECT under the rule: dialTarget (the rule's address, its parent
// proxy's CONNECT tunnel) and, for https:// absolute URIs,
// handshakeTarget (server_name, roots, TLS versions of base, the rule's
// server-facing template; client_cert; fetch_intermediates), within the
// upstream timeout. So the parent's verdicts, AIA and client certificates
// apply to a GET https://… sent to the proxy port as they do to a CONNECT.
// The one exception is http:// through a parent: it goes there in
// absolute form (the parent may allow CONNECT to 443 only, as squid does
// by default), with the parent's credentials (setParentAuth). The
// environment's proxy settings are never read (a proxy that follows its
// own environment can loop into itself).
func (s *Server) newTransport(rule *policy.Rule, base *tls.Config, timeout time.Duration) *http.Transport {
	parent := rule.Upstream.Proxy
	target := func(addr string, def int) target {
		host, port := splitTarget(addr, def)
		a, name := upstreamTarget(rule, host, port)
		return target{rule: rule, host: host, port: port, addr: a, name: name, tls: base, aia: s.aia}
	}
	var proxy func(*http.Request) (*url.URL, error)
	if pf := proxyFunc(parent); pf != nil {
		proxy = func(r *http.Request) (*url.URL, error) {
			if r.URL.Scheme == "https" {
				return nil, nil // DialTLSContext tunnels through the parent
			}
			return pf(r)
		}
	}
	return &http.Transport{
		Proxy: proxy,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if parent != nil {
				return s.dial(ctx, network, addr) // the parent itself (absolute form)
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return dialTarget(ctx, s.dial, target(addr, 80))
		},
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			t := target(addr, 443)
			raw, err := dialTarget(ctx, s.dial, t)
			if err != nil {
				return nil, err
			}
			tc, err := handshakeTarget(ctx, raw, t, t.tls, []string{"http/1.1"})
			if err != nil {
				return nil, err
			}
			return &forwardTLS{Conn: tc, t: t}, nil
		},
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
}

// forwardTLS is an upstream connection of newTransport: a TLS 1.3 server's
// rejection of the client certificate arrives on the first read, after
// the handshake, and is turned into the same *clientCertError a CONNECT
// reports (lateClientCertFailure).
type forwardTLS struct {
	*tls.Conn
	t target
}

func (c *forwardTLS) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		if ce, ok := lateClientCertFailure(c.t, c.Conn, err); ok {
			return n, c.t.failed("handshake", ce)
		}
	}
	return n, err
}

// serveNonProxy answers requests that are not proxy requests (a browser
// pointed at the proxy port itself).
func (s *Server) serveNonProxy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "This is tlsbridge, an HTTP proxy. Point the app at it with HTTPS_PROXY=http://%s and trust its CA (tlsbridge ca export).\n", r.Host)
}

// plainState travels with a plain-HTTP request through goproxy.
type plainState struct {
	start time.Time
	rule  *policy.Rule
	rt    *snapshot
	id    uint64
}

func (s *Server) onPlainRequest(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	st := &plainState{start: time.Now(), id: s.connID.Add(1), rt: s.rt.Load()}
	ctx.UserData = st
	def := 80
	if r.URL.Scheme == "https" {
		def = 443
	}
	host, port := splitTarget(r.URL.Host, def)
	pol := st.rt.pol
	st.rule = pol.Match(host, port)
	if st.rule.Action == policy.ActionDeny {
		return r, textResponse(r, http.StatusForbidden, fmt.Sprintf("tlsbridge: %s:%d is denied by %s\n", host, port, st.rule.Name))
	}
	// Plain HTTP goes to port 80 and to connect_ports, nowhere else: a
	// proxy that forwards to any port is a port scanner for its clients.
	if port != 80 && !pol.AllowsPort(port) {
		return r, textResponse(r, http.StatusForbidden, fmt.Sprintf("tlsbridge: plain HTTP to port %d is not allowed (port 80 and connect_ports %v are); add it to connect_ports to allow it\n", port, pol.ConnectPorts))
	}
	tr := st.rt.transport[st.rule]
	parent := st.rule.Upstream.Proxy
	ctx.RoundTripper = goproxy.RoundTripperFunc(func(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
		// goproxy has removed the app's own Proxy-Authorization (a hop-by-hop
		// field); the parent's is tlsbridge's.
		setParentAuth(req, parent)
		return tr.RoundTrip(req)
	})
	return r, nil
}

func (s *Server) onPlainResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	st, _ := ctx.UserData.(*plainState)
	if resp == nil && ctx.Error != nil {
		// The dial stage's own error (dialTarget, handshakeTarget) is
		// classified as for a CONNECT; any other is a failed dial.
		var ue *upstreamError
		if !errors.As(ctx.Error, &ue) {
			host, _ := splitTarget(ctx.Req.URL.Host, 80)
			ue = &upstreamError{stage: "dial", host: host, addr: ctx.Req.URL.Host, name: host, err: ctx.Error}
			if st != nil {
				ue.rule = st.rule
				if a := st.rule.Upstream.Address; a != "" {
					ue.addr = a
				}
			}
		}
		v := ue.verdict()
		resp = textResponse(ctx.Req, v.status, errorBody(v.status, ctx.Req.URL.Host, v.cause, v.fix))
	}
	if st != nil && resp != nil {
		s.metrics.forward(st.rule.Action == policy.ActionDeny, resp, ctx.Error)
		host, port := splitTarget(ctx.Req.URL.Host, 80)
		e := s.log.WithFields(logrus.Fields{
			logfield.ConnID:     st.id,
			logfield.ClientAddr: ctx.Req.RemoteAddr,
			logfield.Host:       host,
			logfield.Port:       port,
			logfield.Rule:       st.rule.Name,
			logfield.Action:     "forward",
			logfield.Method:     ctx.Req.Method,
			logfield.Path:       ctx.Req.URL.Path,
			logfield.Status:     resp.StatusCode,
			logfield.BytesOut:   resp.ContentLength,
			logfield.DurationMS: time.Since(st.start).Milliseconds(),
		})
		if ctx.Error != nil {
			e = e.WithError(ctx.Error)
		}
		e.Info("access")
	}
	return resp
}

// textResponse builds a plain-text response for goproxy to send.
func textResponse(r *http.Request, status int, body string) *http.Response {
	resp := goproxy.NewResponse(r, "text/plain; charset=utf-8", status, body)
	resp.Header.Set("Connection", "close")
	return resp
}

// splitTarget splits "host:port" (or "host") into a host and a port.
func splitTarget(hostport string, defaultPort int) (string, int) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.Trim(hostport, "[]"), defaultPort
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return host, -1
	}
	return host, port
}

// printfLogger adapts goproxy's Printf logger to logrus at Debug; with
// Verbose off it only gets goproxy's warnings ("[001] WARN: ...").
type printfLogger struct{ e *logrus.Entry }

func (l printfLogger) Printf(format string, v ...any) {
	if l.e.Logger.IsLevelEnabled(logrus.DebugLevel) {
		l.e.Debug("goproxy: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

// newStdLogger adapts a standard library *log.Logger (http.Server.ErrorLog)
// into the entry at level.
func newStdLogger(e *logrus.Entry, level logrus.Level) *log.Logger {
	return log.New(logWriter{e, level}, "", 0)
}

type logWriter struct {
	e     *logrus.Entry
	level logrus.Level
}

func (w logWriter) Write(p []byte) (int, error) {
	w.e.Log(w.level, strings.TrimSpace(string(p)))
	return len(p), nil
}
