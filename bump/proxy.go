package bump

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
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

// newTransport is the plain-HTTP transport of one rule: its address (the
// dial goes there, whatever the URL's host), its server_name and roots and
// TLS versions for https:// URLs (base, the rule's server-facing template),
// never the environment's proxy settings (a proxy that follows its own
// environment can loop into itself).
func (s *Server) newTransport(rule *policy.Rule, base *tls.Config, timeout time.Duration) *http.Transport {
	tlsCfg := base.Clone()
	tlsCfg.ServerName = rule.Upstream.ServerName // "" verifies the URL's host
	dial := s.dial
	if a := rule.Upstream.Address; a != "" && rule.Upstream.Proxy == nil {
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) { return s.dial(ctx, network, a) }
	}
	// With a parent proxy, requests go to it (absolute-form for http://,
	// CONNECT for https://); the parent resolves the URL's host, so a
	// rule's address does not apply to plain HTTP there. Its credentials
	// go in the CONNECT's header here, and in each http:// request's
	// header in onPlainRequest.
	var connectHeader http.Header
	if p := rule.Upstream.Proxy; p != nil && p.Authorization != "" {
		connectHeader = http.Header{"Proxy-Authorization": {p.Authorization}}
	}
	return &http.Transport{
		Proxy:                 proxyFunc(rule.Upstream.Proxy),
		ProxyConnectHeader:    connectHeader,
		DialContext:           dial,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
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
		if parent != nil && parent.Authorization != "" && req.URL.Scheme == "http" {
			req.Header.Set("Proxy-Authorization", parent.Authorization)
		}
		return tr.RoundTrip(req)
	})
	return r, nil
}

func (s *Server) onPlainResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	st, _ := ctx.UserData.(*plainState)
	if resp == nil && ctx.Error != nil {
		host, _ := splitTarget(ctx.Req.URL.Host, 80)
		ue := &upstreamError{stage: "dial", host: host, addr: ctx.Req.URL.Host, name: host, err: ctx.Error}
		if st != nil {
			ue.rule = st.rule
			if a := st.rule.Upstream.Address; a != "" {
				ue.addr = a
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
