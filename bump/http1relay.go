package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/http1"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
)

// The bumped-HTTP stage. For a bumped connection that carries HTTP/1.x,
// tlsbridge is the HTTP/1.1 intermediary, as squid or HAProxy are: every
// head is read by internal/http1 (the one parser deciding where a message
// ends) and written upstream anew, bodies are copied by their framing, and
// the upstream only ever sees what tlsbridge wrote. Anything ambiguous is
// answered 400 and never reaches the origin (RFC 9112 11.2). Because
// tlsbridge owns the framing, it also owns persistence: an app that sends
// "Connection: close" has its own connection closed after the response,
// while the upstream connection goes back to the pool when its message
// ended cleanly, so one-shot apps do not pay an upstream handshake each.

// Buffer sizes: the app's reader lives as long as the app connection (it
// holds pipelined requests), so it stays small; the upstream reader and the
// writers are borrowed per message, sized for a full TLS record.
const (
	appReaderSize = 4 << 10
	h1BufferSize  = 16 << 10
	// earlyResponseWait is how long a finished response waits for the
	// app's request body to finish being forwarded before tlsbridge gives
	// up on both connections (a server may answer before reading the whole
	// body, e.g. 413 or 401).
	earlyResponseWait = time.Second
	// reprobeAfter: an upstream connection kept across an app's requests is
	// probed for liveness (one non-blocking peek) before reuse only when it
	// sat idle this long; a server closing it sooner is caught by the retry.
	reprobeAfter = time.Second
)

var (
	upstreamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1BufferSize) }}
	h1Writers       = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, h1BufferSize) }}
)

// h1conn is one bumped app connection served as HTTP/1.x.
type h1conn struct {
	s      *Server
	ss     *session
	ci     *connInfo
	t      target // the upstream: new connections are dialled to it
	key    poolKey
	protos []string // ALPN offered on a new upstream: the app's choice
	host   string   // Host for an HTTP/1.0 app that sent none
	lim    http1.Limits

	app appTLS
	ar  *bufio.Reader
	aw  batchedWriter

	mu       sync.Mutex // guards up for the idle watch
	up       *tls.Conn  // the attached upstream, or nil
	ur       *bufio.Reader
	upFrom   string    // "pool", "kept" or "dial": how up was obtained
	upSince  time.Time // when up finished its last response
	pinned   bool      // connection-bound auth (NTLM): never pool up
	firstErr error     // the dial before the app handshake failed

	req, resp http1.Head
	wbuf      []byte
	served    int  // requests answered
	counted   bool // the connection is in the metrics already (a failure)
	// bodyFailed is set by a bodySender that failed and closed the upstream:
	// its result is on the way, no need to close the app to unblock it.
	bodyFailed atomic.Bool
	// idle is the HTTP stage's idle watch; it sees HTTP-stage reads only,
	// so a 101 stops it and the byte relay's own watch takes over.
	idle *idleWatch
}

// meter counts what one side sends and when, for stats and the idle watch.
type meter struct {
	net.Conn
	n    *atomic.Int64
	last *atomic.Int64
}

func newMeter(c net.Conn, n *atomic.Int64, st *relayStats) meter {
	return meter{Conn: c, n: n, last: &st.lastIO}
}

func (m meter) Read(p []byte) (int, error) {
	n, err := m.Conn.Read(p)
	if n > 0 {
		m.n.Add(int64(n))
		m.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// batchedWriter writes to the app: each write is gathered by the app's
// batchConn into one syscall, also when TLS 1.0 splits it in two records.
type batchedWriter struct {
	c     net.Conn
	batch *batchConn
}

func (w batchedWriter) Write(p []byte) (int, error) {
	if w.batch == nil {
		return w.c.Write(p)
	}
	w.batch.start()
	n, err := w.c.Write(p)
	if ferr := w.batch.flush(); err == nil {
		err = ferr
	}
	return n, err
}

// serveHTTP1 runs the intermediary on a bumped app connection until the
// app or tlsbridge ends it. br reads the app through a meter (newMeter). up
// is the upstream dialled (or pooled) before the app's handshake, or nil
// with uerr saying why.
func (ss *session) serveHTTP1(app appTLS, br *bufio.Reader, up *tls.Conn, uerr error, t target) {
	s, ci, lim := ss.s, ss.ci, ss.rt.lim
	h := &h1conn{
		s:        s,
		ss:       ss,
		ci:       ci,
		t:        t,
		key:      ss.poolKey(t),
		host:     authority(ci.host, ci.port),
		lim:      http1.Limits{MaxBytes: lim.MaxHeaderBytes},
		app:      app,
		aw:       batchedWriter{c: app, batch: batcherOf(app)},
		firstErr: uerr,
	}
	if p := ci.alpn; p != "" {
		h.protos = []string{p}
	}
	ci.stats.lastIO.Store(time.Now().UnixNano())
	h.ar = br
	if up != nil {
		from := "dial"
		if ci.reused {
			from = "pool"
		}
		h.attach(up, from)
	}
	h.idle = newIdleWatch(lim.IdleTimeout, &ci.stats.lastIO, func() {
		ci.stats.fail("idle", errIdle)
		h.closeAll()
	})
	defer h.idle.stop()
	// Shutdown closes the app connection after limits.drain_timeout; an exchange
	// blocked on the upstream needs its side closed too.
	var drain *time.Timer
	stop := context.AfterFunc(s.ctx, func() {
		h.mu.Lock()
		drain = time.AfterFunc(lim.DrainTimeout, h.closeAll)
		h.mu.Unlock()
	})
	defer func() {
		stop()
		h.mu.Lock()
		if drain != nil {
			drain.Stop()
		}
		h.mu.Unlock()
	}()
	for h.exchange() {
	}
	h.finish()
}

// authority is host[:port] for a Host field: the port only when not 443.
func authority(host string, port int) string {
	if port == 443 || port <= 0 {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// attach makes c the connection's upstream.
func (h *h1conn) attach(c *tls.Conn, from string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up, h.upFrom, h.upSince = c, from, time.Now()
	us := c.ConnectionState()
	h.ci.upstreamTLS, h.ci.upstreamCipher = us.Version, us.CipherSuite
}

// detach gives up the upstream: back to the pool when keep says it sits
// cleanly between messages, else closed.
func (h *h1conn) detach(keep bool) {
	h.mu.Lock()
	up, ur := h.up, h.ur
	h.up, h.ur = nil, nil
	h.mu.Unlock()
	if up == nil {
		return
	}
	if ur != nil {
		keep = keep && ur.Buffered() == 0
		ur.Reset(nil)
		upstreamReaders.Put(ur)
	}
	if keep && !h.pinned {
		h.s.pool.put(h.key, up)
		return
	}
	up.Close()
}

// readUpstream borrows the upstream reader for one response: an idle
// kept connection holds no 16 KiB buffer.
func (h *h1conn) readUpstream() {
	if h.ur != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ur = upstreamReaders.Get().(*bufio.Reader)
	h.ur.Reset(newMeter(h.up, &h.ci.stats.out, &h.ci.stats))
}

// releaseReader returns the upstream reader after a complete response; a
// server that sent more than its response cannot be reused.
func (h *h1conn) releaseReader() {
	if h.ur.Buffered() > 0 {
		h.detach(false)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ur.Reset(nil)
	upstreamReaders.Put(h.ur)
	h.ur = nil
}

// closeAll closes both sides (idle timeout, a broken body).
func (h *h1conn) closeAll() {
	h.app.Close()
	h.mu.Lock()
	if h.up != nil {
		h.up.Close()
	}
	h.mu.Unlock()
}

// finish ends the app connection: an upstream still attached went back
// through detach already when it was reusable; the app is closed, and a
// connection that served no request gets its one access line.
func (h *h1conn) finish() {
	h.detach(true)
	h.app.Close()
	if !h.counted {
		h.s.metrics.access(h.ci)
	}
	if h.served == 0 && h.s.log.Logger.IsLevelEnabled(logrus.InfoLevel) {
		h.s.log.WithFields(h.ci.fields()).Info("access")
	}
}

// exchange serves one request and reports whether the app connection goes
// on to the next.
func (h *h1conn) exchange() bool {
	in0 := h.ci.stats.in.Load() - int64(h.ar.Buffered())
	err := h.req.ReadRequest(h.ar, h.lim)
	if err != nil {
		var pe *http1.Error
		switch {
		case errors.As(err, &pe):
			h.refuseRequest(pe.Status, pe.Reason, err)
		case errors.Is(err, io.EOF):
			// The app closed between requests: the normal end.
		default:
			h.ci.stats.fail("app", err)
		}
		return false
	}
	rq := reqLog{start: time.Now(), in: in0, out: h.ci.stats.out.Load()}
	if h.req.IsMethod(http.MethodConnect) {
		h.refuseRequest(http.StatusMethodNotAllowed, "CONNECT inside a bumped connection", nil)
		return false
	}
	if h.firstErr != nil {
		h.answerUpstreamError(&rq, h.firstErr)
		return false
	}
	if isConnectionAuth(h.req.Get("authorization")) {
		h.pinned = true
	}
	bodyDone, err := h.send(&rq, false)
	if err != nil {
		h.answerUpstreamError(&rq, err)
		return false
	}
	return h.receive(&rq, bodyDone)
}

// reqLog is what one request did, for its access line.
type reqLog struct {
	start   time.Time
	in, out int64 // connection byte counters when the request started
	status  int
	reused  bool
	err     error
}

// retryable reports whether the request may be sent again on a new
// upstream after a reused one failed: idempotent (as Go's Transport
// decides) and without a body, which was consumed from the app already
// (a retry would take the app's next bytes as the body).
func (h *h1conn) retryable() bool {
	return h.req.RequestBody() == http1.BodyNone && idempotent(h.req.Method)
}

// send gets an upstream and writes the request head, and the body when it
// is already here; a body still to come is copied by a bodySender whose
// result arrives on the returned channel (nil when there is none).
func (h *h1conn) send(rq *reqLog, fresh bool) (<-chan error, error) {
	h.bodyFailed.Store(false)
	bodyKind := h.req.RequestBody()
	retryable := h.retryable()
	for attempt := 0; ; attempt++ {
		if err := h.ensureUpstream(fresh || attempt > 0); err != nil {
			return nil, err
		}
		rq.reused = h.upFrom != "dial"
		h.wbuf = h.req.AppendRequest(h.wbuf[:0], h.host)
		whole := bodyKind == http1.BodyNone ||
			(bodyKind == http1.BodyLength && h.req.ContentLength <= h1BufferSize && int64(h.ar.Buffered()) >= h.req.ContentLength)
		if whole {
			if bodyKind == http1.BodyLength {
				b, _ := h.ar.Peek(int(h.req.ContentLength))
				h.wbuf = append(h.wbuf, b...)
				h.ar.Discard(len(b))
			}
			_, err := h.up.Write(h.wbuf)
			if err == nil {
				return nil, nil
			}
			if rq.reused && retryable && attempt == 0 {
				h.detach(false)
				continue // a pooled connection the server had closed
			}
			return nil, h.t.failed("write", err)
		}
		if _, err := h.up.Write(h.wbuf); err != nil {
			return nil, h.t.failed("write", err)
		}
		done := make(chan error, 1)
		go (&bodySender{h: h, kind: bodyKind, up: h.up, done: done}).run()
		return done, nil
	}
}

// bodySender copies one request body to the upstream while the response is
// read (Expect: 100-continue, and servers that answer early, need both at
// once); a named type so stacks read well. Its owner waits on done.
type bodySender struct {
	h    *h1conn
	kind http1.Body
	up   *tls.Conn
	done chan<- error
}

func (b *bodySender) run() {
	w := h1Writers.Get().(*bufio.Writer)
	w.Reset(b.up)
	var err error
	if b.kind == http1.BodyChunked {
		_, err = http1.CopyChunked(w, b.h.ar, false)
	} else {
		_, err = http1.CopyLength(w, b.h.ar, b.h.req.ContentLength)
	}
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	h1Writers.Put(w)
	if err != nil {
		// The upstream holds half a request: it can only be closed, which
		// also ends the wait for its response.
		b.h.bodyFailed.Store(true)
		b.up.Close()
	}
	b.done <- err
}

// ensureUpstream attaches a usable upstream: the one kept from the last
// request, else a pooled one, else a new dial (always a new dial on retry).
func (h *h1conn) ensureUpstream(fresh bool) error {
	if h.up != nil && time.Since(h.upSince) > reprobeAfter && !alive(h.up) {
		h.detach(false)
	}
	if h.up != nil {
		if h.upFrom == "dial" && h.served > 0 {
			h.upFrom = "kept"
		}
		return nil
	}
	if !fresh && !h.pinned {
		if c := h.s.pool.take(h.key); c != nil {
			h.attach(c, "pool")
			return nil
		}
	}
	c, err := h.ss.dialTLS(h.t, h.protos, nil)
	if err != nil {
		return err
	}
	h.attach(c, "dial")
	return nil
}

// receive reads the response (interim ones first), writes it to the app and
// decides what happens to both connections.
func (h *h1conn) receive(rq *reqLog, bodyDone <-chan error) bool {
	out0 := h.ci.stats.out.Load()
	retried := false
	bodyCut := false // the body was not sent whole: the app connection ends
	for {
		h.readUpstream()
		up := h.up
		err := h.resp.ReadResponse(h.ur, h.lim)
		if err != nil {
			if !retried && h.retryable() && rq.reused && h.ci.stats.out.Load() == out0 && !errors.As(err, new(*http1.Error)) {
				// The server closed a reused connection before answering:
				// send the request once more on a new one.
				retried = true
				h.detach(false)
				done, serr := h.send(rq, true)
				if serr != nil {
					h.answerUpstreamError(rq, serr)
					return false
				}
				bodyDone = done
				out0 = h.ci.stats.out.Load()
				continue
			}
			if berr := h.abandonBody(bodyDone); berr != nil {
				var pe *http1.Error
				if errors.As(berr, &pe) {
					// The app's body was malformed: its fault, not the
					// server's (the upstream was closed mid-request).
					h.refuseRequest(pe.Status, pe.Reason, berr)
					return false
				}
				if errors.As(berr, new(*http1.ReadError)) {
					h.appGoneMidBody(rq, berr)
					return false
				}
			}
			if ce, ok := lateClientCertFailure(h.t, up, err); ok {
				h.answerUpstreamError(rq, h.t.failed("handshake", ce))
				return false
			}
			h.answerResponseError(rq, err)
			return false
		}
		if h.resp.Status >= 200 {
			if h.bodyFailed.Load() {
				// The app's body failed and its sender closed the
				// upstream; a response that still got through (sent
				// after the close_notify, read before the socket
				// closed) answers a request the server never got whole.
				berr := <-bodyDone // the sender's one result, taken here
				bodyDone, bodyCut = nil, true
				var pe *http1.Error
				if errors.As(berr, &pe) {
					h.refuseRequest(pe.Status, pe.Reason, berr)
					return false
				}
				if errors.As(berr, new(*http1.ReadError)) {
					h.appGoneMidBody(rq, berr)
					return false
				}
				// Writing the body to the server failed after it had
				// answered (an early 413, 401): the app gets the answer,
				// then the connection closes, its body half-sent.
			}
			break
		}
		if h.resp.Status == http.StatusSwitchingProtocols {
			if !h.req.Upgrade {
				h.abandonBody(bodyDone)
				h.answerResponseError(rq, &http1.Error{Status: http1.StatusBadGateway, Reason: "101 Switching Protocols to a request that did not ask to upgrade"})
				return false
			}
			h.switchProtocols(rq, bodyDone)
			return false
		}
		if h.req.Minor == 1 { // 100 Continue, 103 Early Hints: HTTP/1.1 apps only
			h.wbuf = h.resp.AppendResponse(h.wbuf[:0], false, false)
			if _, err := h.aw.Write(h.wbuf); err != nil {
				h.abandonBody(bodyDone)
				h.detach(false)
				return false
			}
		}
	}
	if isConnectionAuth(h.resp.Get("www-authenticate")) {
		h.pinned = true
	}
	kind := h.resp.ResponseBody(h.req.Method)
	dechunk := kind == http1.BodyChunked && h.req.Minor == 0
	closeApp := h.req.Close || kind == http1.BodyClose || dechunk || bodyCut || h.s.ctx.Err() != nil
	rq.status = h.resp.Status
	h.wbuf = h.resp.AppendResponse(h.wbuf[:0], closeApp, dechunk)

	w := h1Writers.Get().(*bufio.Writer)
	w.Reset(h.aw)
	defer func() { w.Reset(nil); h1Writers.Put(w) }()
	_, werr := w.Write(h.wbuf)
	var berr error
	if werr == nil {
		switch kind {
		case http1.BodyLength:
			_, berr = http1.CopyLength(w, h.ur, h.resp.ContentLength)
		case http1.BodyChunked:
			_, berr = http1.CopyChunked(w, h.ur, dechunk)
		case http1.BodyClose:
			_, berr = http1.CopyUntilEOF(w, h.ur)
		}
		if berr == nil {
			berr = w.Flush()
		}
	}
	if werr != nil || berr != nil {
		// Too late for a status: the app sees the connection reset, never
		// a truncated body that looks complete.
		err := werr
		if err == nil {
			err = berr
		}
		var re *http1.ReadError
		if errors.As(err, &re) {
			h.ci.stats.fail("upstream", err)
		} else {
			h.ci.stats.fail("app", err)
		}
		rq.err = err
		abort(h.app)
		h.abandonBody(bodyDone)
		h.detach(false)
		h.logRequest(rq)
		return false
	}
	if bodyDone != nil && !h.waitBody(bodyDone) {
		closeApp = true
		h.detach(false)
	}
	keepUp := kind != http1.BodyClose && !h.resp.Close && !bodyCut && h.up != nil
	if !keepUp {
		h.detach(false)
	} else {
		h.releaseReader()
		h.upSince = time.Now()
	}
	h.logRequest(rq)
	if closeApp {
		closeWrite(h.app)
	}
	return !closeApp
}

// appGoneMidBody ends an exchange whose app stopped sending in the middle
// of its request body: the upstream holding half a request is closed, and
// there is nobody to answer (not a 502: the server did nothing wrong).
func (h *h1conn) appGoneMidBody(rq *reqLog, err error) {
	h.ci.stats.fail("app", err)
	rq.err = err
	abort(h.app)
	h.detach(false)
	h.logRequest(rq)
}

// waitBody waits for the request body to have been forwarded, bounded by
// earlyResponseWait once the response is complete; false when it did not
// finish cleanly (both connections are then past saving).
func (h *h1conn) waitBody(done <-chan error) bool {
	t := time.NewTimer(earlyResponseWait)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			h.ci.stats.fail("app", err)
		}
		return err == nil
	case <-t.C:
		h.abandonBody(done)
		return false
	}
}

// abandonBody stops a bodySender that is still running (closing both
// connections unblocks it), waits for it and returns its error.
func (h *h1conn) abandonBody(done <-chan error) error {
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		return err
	default:
	}
	if !h.bodyFailed.Load() {
		h.closeAll()
	}
	return <-done
}

// switchProtocols forwards a 101 and relays bytes both ways from then on
// (WebSocket and other upgrades); the upstream is never pooled.
func (h *h1conn) switchProtocols(rq *reqLog, bodyDone <-chan error) {
	if bodyDone != nil && !h.waitBody(bodyDone) {
		h.detach(false)
		return
	}
	rq.status = h.resp.Status
	h.wbuf = h.resp.AppendResponse(h.wbuf[:0], false, false)
	if n := h.ur.Buffered(); n > 0 {
		b, _ := h.ur.Peek(n)
		h.wbuf = append(h.wbuf, b...)
	}
	if _, err := h.aw.Write(h.wbuf); err != nil {
		h.detach(false)
		return
	}
	if n := h.ar.Buffered(); n > 0 {
		b, _ := h.ar.Peek(n)
		if _, err := h.up.Write(b); err != nil {
			h.detach(false)
			return
		}
	}
	h.mu.Lock()
	up := h.up
	h.up = nil
	h.mu.Unlock()
	h.served++
	h.logRequest(rq)
	h.idle.stop()
	relay(h.app, up, h.ss.rt.lim.IdleTimeout, &h.ci.stats)
}

// refuseRequest answers a request tlsbridge will not forward and ends the
// app connection; an attached upstream, which saw none of it, is closed too.
func (h *h1conn) refuseRequest(status int, reason string, err error) {
	rq := reqLog{start: time.Now(), status: status, err: err}
	body := fmt.Sprintf("tlsbridge: %d %s: %s. tlsbridge does not forward a request whose framing is malformed or ambiguous (RFC 9112); fix the client that sent it.\n", status, http.StatusText(status), reason)
	writeResponse(h.aw, status, body)
	h.detach(false)
	h.ci.stats.fail("app", fmt.Errorf("request refused: %s", reason))
	h.logRequest(&rq)
	h.lingerClose()
}

// answerUpstreamError answers the request with the 502/504 that explains a
// failed dial, handshake or write, and ends the app connection.
func (h *h1conn) answerUpstreamError(rq *reqLog, err error) {
	var ue *upstreamError
	if !errors.As(err, &ue) {
		ue = h.t.failed("exchange", err)
	}
	v := classify(ue, nil, h.ss.rt.leafKey)
	status, cause, fix := v.status, v.cause, v.fix
	h.ci.status = status
	rq.status, rq.err = status, ue.err
	h.s.metrics.failed(h.ci, sideUpstream, v)
	h.counted = true
	h.s.log.WithFields(h.requestFields(rq)).WithField(logfield.Stage, "upstream-"+ue.stage).
		WithField(logfield.Hint, fix).WithError(ue.err).Warn("upstream failed: " + cause)
	h.served++ // logged above
	h.detach(false)
	if h.req.IsMethod(http.MethodHead) {
		writeResponse(h.aw, status, "")
	} else {
		writeResponse(h.aw, status, errorBody(status, h.ci.host, cause, fix))
	}
	h.lingerClose()
}

// answerResponseError answers a response tlsbridge could not read or will
// not forward: 504 for a timeout, else 502 naming the cause.
func (h *h1conn) answerResponseError(rq *reqLog, err error) {
	var pe *http1.Error
	var status int
	var cause string
	switch {
	case errors.As(err, &pe):
		status, cause = http.StatusBadGateway, fmt.Sprintf("The server's response is malformed or ambiguous (%s); tlsbridge does not pass such responses on.", pe.Reason)
	case isTimeout(err):
		status, cause = http.StatusGatewayTimeout, "The server did not answer in time."
	default:
		status, cause = http.StatusBadGateway, fmt.Sprintf("The server closed or broke the connection before a complete response head: %v.", err)
	}
	fix := "Check the server's logs for this request; tlsbridge forwarded it unchanged apart from hop-by-hop headers."
	h.ci.stats.fail("upstream", err)
	rq.status, rq.err = status, err
	h.detach(false)
	if h.req.IsMethod(http.MethodHead) {
		writeResponse(h.aw, status, "")
	} else {
		writeResponse(h.aw, status, errorBody(status, h.ci.host, cause, fix))
	}
	h.logRequest(rq)
	h.lingerClose()
}

// lingerClose closes the app connection after an error response: a
// close_notify, then what the app still sends is read (bounded) so the close
// does not turn into a reset that destroys the answer before it is read.
func (h *h1conn) lingerClose() {
	closeWrite(h.app)
	h.app.SetReadDeadline(h.ss.rt.handshakeDeadline())
	_, _ = io.Copy(io.Discard, io.LimitReader(h.ar, 64<<10))
}

// logRequest writes the request's access line.
func (h *h1conn) logRequest(rq *reqLog) {
	h.served++
	if rq.status != 0 {
		h.ci.status = rq.status
	}
	if !h.s.log.Logger.IsLevelEnabled(logrus.InfoLevel) {
		return
	}
	e := h.s.log.WithFields(h.requestFields(rq))
	if rq.err != nil {
		e = e.WithError(rq.err)
	}
	e.Info("access")
}

// requestFields are the connection's access fields with this request's
// method, path, status, bytes and duration.
func (h *h1conn) requestFields(rq *reqLog) logrus.Fields {
	f := h.ci.fields()
	if len(h.req.Method) > 0 {
		f[logfield.Method], f[logfield.Path] = string(h.req.Method), string(h.req.Target)
	}
	if rq.status != 0 {
		f[logfield.Status] = rq.status
	}
	if h.ar != nil {
		f[logfield.BytesIn] = h.ci.stats.in.Load() - int64(h.ar.Buffered()) - rq.in
		f[logfield.BytesOut] = h.ci.stats.out.Load() - rq.out
	}
	f[logfield.DurationMS] = time.Since(rq.start).Milliseconds()
	if rq.reused {
		f[logfield.UpstreamReused] = true
	} else {
		delete(f, logfield.UpstreamReused)
	}
	if rq.err == nil {
		delete(f, logfield.ClosedBy)
	}
	delete(f, logrus.ErrorKey) // WithError adds this request's own
	return f
}

// idempotent methods may be sent again when a reused upstream connection
// turns out closed (RFC 9110 9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// isConnectionAuth reports NTLM or Negotiate, which authenticate the
// connection rather than the request (RFC 4559): such an upstream connection
// stays with its app and is never pooled (squid pins them too).
func isConnectionAuth(v []byte) bool {
	return hasPrefixFold(v, "ntlm") || hasPrefixFold(v, "negotiate")
}

func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// looksHTTP1 reports whether the app's first bytes start an HTTP/1.x
// request line (a method token and a space) and not the HTTP/2 preface; it
// only routes the connection, the parser decides everything else. It waits
// up to first for the first byte, then at most firstLineWait for each
// further one (a client sends its request line at once; a TLS 1.0 app's
// 1/n-1 split sends one byte first), so a protocol that sends one byte and
// waits is relayed, not stalled.
func looksHTTP1(c net.Conn, br *bufio.Reader, first time.Duration) bool {
	defer c.SetReadDeadline(time.Time{})
	c.SetReadDeadline(time.Now().Add(first))
	for n := 1; n <= 24; n++ {
		if n == 2 {
			c.SetReadDeadline(time.Now().Add(firstLineWait))
		}
		b, err := br.Peek(n)
		if err != nil {
			return false
		}
		switch ch := b[n-1]; {
		case ch == ' ':
			return n > 1 && string(b) != "PRI "
		case ch == '\r' || ch == '\n':
			if n > 2 { // RFC 9112 2.2: empty lines may precede a request
				return false
			}
		case !isTokenChar(ch):
			return false
		}
	}
	return false
}

// firstLineWait bounds the wait for each byte after the first while
// looksHTTP1 decides.
const firstLineWait = 100 * time.Millisecond

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !isSeparator(c)
}

func isSeparator(c byte) bool {
	switch c {
	case '"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
		return true
	}
	return false
}
