package bump

import (
	"bytes"
	"crypto/tls"
	"sync"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// Upstream connection reuse. A legacy app that opens a new connection per
// request would cost tlsbridge a TLS handshake with the server every time;
// squid avoids that by pooling server connections. A bumped relay does not
// parse HTTP, so it can only hand its upstream connection back when it knows
// the connection sits exactly between two messages. The trackers below follow
// HTTP/1.1 framing on both directions (heads parsed, bodies counted, never
// copied) and give up at the first thing they do not fully understand:
// chunked or close-delimited bodies, Connection: close, Upgrade, 1xx, HTTP/1.0,
// pipelining, oversized heads, and NTLM/Negotiate authentication, which
// binds the connection to one app's identity. Giving up only means "close the upstream as
// before": a connection is reused only when both directions ended on a
// message boundary with every request answered.

// maxTrackedHead bounds a message head the trackers buffer.
const maxTrackedHead = 16 << 10

// reuser decides whether a relay's upstream connection can be kept.
type reuser struct {
	mu       sync.Mutex
	req      httpTracker
	resp     httpTracker
	head     []bool // per request in flight: was it HEAD (no response body)
	keeping  bool   // the app closed on a boundary: the upstream is being kept
	dirty    bool   // bytes came from the upstream after that: do not keep
	finished bool   // keeping and the upstream copier has stopped
}

func newReuser() *reuser {
	r := &reuser{}
	r.resp.isResponse = true
	return r
}

// httpTracker follows message framing in one direction.
type httpTracker struct {
	isResponse bool
	head       []byte // the part of a head read so far
	bodyLeft   int64  // body bytes still to come
	done       int    // complete messages
	broken     bool   // framing not followed: never reuse
}

func (t *httpTracker) atBoundary() bool { return !t.broken && len(t.head) == 0 && t.bodyLeft == 0 }

// feedApp records bytes the app sent towards the upstream.
func (r *reuser) feedApp(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.feed(&r.req, p)
}

// feedUpstream records bytes the upstream sent towards the app; after the
// decision to keep the connection, any such bytes make it unusable.
func (r *reuser) feedUpstream(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keeping {
		r.dirty = true
		return
	}
	r.feed(&r.resp, p)
}

func (r *reuser) feed(t *httpTracker, p []byte) {
	for len(p) > 0 && !t.broken {
		if t.bodyLeft > 0 {
			n := int64(len(p))
			if n > t.bodyLeft {
				n = t.bodyLeft
			}
			t.bodyLeft -= n
			p = p[n:]
			if t.bodyLeft == 0 {
				t.done++
			}
			continue
		}
		// Most heads arrive whole in one read: parse them in place and copy
		// nothing; only a head split across reads is gathered in t.head.
		var h []byte
		if len(t.head) == 0 {
			if i := bytes.Index(p, crlfcrlf); i >= 0 {
				h, p = p[:i+4], p[i+4:]
			}
		} else {
			from := max(len(t.head)-3, 0)
			old := len(t.head)
			t.head = append(t.head, p...)
			if i := bytes.Index(t.head[from:], crlfcrlf); i >= 0 {
				end := from + i + 4
				h, p = t.head[:end], p[end-old:]
			}
		}
		if h == nil {
			if len(t.head) == 0 {
				t.head = append(t.head, p...)
			}
			if len(t.head) > maxTrackedHead {
				t.broken = true
			}
			return
		}
		r.parseHead(t, h)
		t.head = t.head[:0]
	}
	if t.broken {
		t.head = nil
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// parseHead reads the framing of one head; anything unexpected breaks t.
// It allocates nothing: it runs for every message of a keep-alive relay.
func (r *reuser) parseHead(t *httpTracker, h []byte) {
	first, rest, _ := bytes.Cut(h[:len(h)-4], []byte("\r\n"))
	var bodyless bool
	if t.isResponse {
		if !bytes.HasPrefix(first, []byte("HTTP/1.1 ")) || len(r.head) == 0 {
			t.broken = true
			return
		}
		status := statusCode(first)
		isHead := r.head[0]
		r.head = r.head[1:]
		switch {
		case status < 200: // 1xx interim responses and garbage
			t.broken = true
			return
		case status == 204 || status == 304 || isHead:
			bodyless = true
		}
	} else {
		m, _, _ := bytes.Cut(first, []byte(" "))
		if !isToken(m) || !bytes.HasSuffix(first, []byte(" HTTP/1.1")) || string(m) == "CONNECT" || len(r.head) > 0 {
			t.broken = true // also: a second request before the first answer
			return
		}
		r.head = append(r.head, string(m) == "HEAD")
	}
	length := int64(-1)
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			t.broken = true
			return
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || (length >= 0 && n != length) {
				t.broken = true
				return
			}
			length = n
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "upgrade"):
			t.broken = true
			return
		case asciiEqualFold(name, "authorization") || asciiEqualFold(name, "www-authenticate"):
			// NTLM and Negotiate authenticate the connection, not the
			// request (RFC 4559): such a connection must never pass to
			// another app (squid pins them for the same reason).
			if hasPrefixFold(value, "ntlm") || hasPrefixFold(value, "negotiate") {
				t.broken = true
				return
			}
		case asciiEqualFold(name, "connection"):
			if containsFold(value, "close") || containsFold(value, "upgrade") {
				t.broken = true
				return
			}
		}
	}
	switch {
	case bodyless:
		t.done++
	case length > 0:
		t.bodyLeft = length
	case length == 0 || !t.isResponse:
		t.done++ // a request without Content-Length has no body (RFC 9112 6.3)
	default:
		t.broken = true // close-delimited response
	}
}

// parseLength parses a Content-Length value: digits only (RFC 9110 8.6).
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

func containsFold(b []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if asciiEqualFold(b[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// keep is called when the app has closed its side: it reports whether the
// upstream connection sits between messages with every request answered,
// and if so marks it as being kept.
func (r *reuser) keep() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.req.atBoundary() && r.resp.atBoundary() && r.req.done > 0 && r.req.done == r.resp.done && len(r.head) == 0 {
		r.keeping = true
	}
	return r.keeping
}

// kept reports whether the relay ended with the upstream reusable.
func (r *reuser) kept() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keeping && !r.dirty
}

// isKeeping reports whether the upstream copier was stopped on purpose.
func (r *reuser) isKeeping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keeping
}

// Pool limits. Idle connections are dropped well before common server
// keep-alive timeouts (Apache: 5 s, nginx: 75 s) so a kept connection is
// rarely one the server is about to close. Per key, enough for an app with
// dozens of workers that each reconnect per request (at 8, 16 such workers
// dialled on every other connection).
const (
	poolIdleTime   = 4 * time.Second
	poolPerKey     = 64
	poolTotal      = 256
	poolProbeDelay = time.Millisecond
)

// poolKey identifies interchangeable upstream connections: same rule (so the
// same versions, roots and verification), same address, same verified name.
type poolKey struct {
	rule *policy.Rule
	addr string
	name string
}

type pooledConn struct {
	conn  *tls.Conn
	since time.Time
}

// upstreamPool holds idle upstream connections between app connections.
// While it holds any, a timer closes those idle for poolIdleTime, so a
// burst's connections do not linger until the next put (nor sit in
// CLOSE_WAIT once the server gives up on them).
type upstreamPool struct {
	idle  time.Duration // poolIdleTime when zero (tests shorten it)
	mu    sync.Mutex
	conns map[poolKey][]pooledConn
	total int
	sweep *time.Timer // armed while total > 0
}

func (p *upstreamPool) idleTime() time.Duration {
	if p.idle > 0 {
		return p.idle
	}
	return poolIdleTime
}

// sweepEvery is how often the timer looks: an idle connection lives at most
// a quarter longer than idleTime.
func (p *upstreamPool) sweepEvery() time.Duration { return p.idleTime() / 4 }

// put keeps c for the next app connection to the same upstream.
func (p *upstreamPool) put(k poolKey, c *tls.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns[k]) >= poolPerKey || p.total >= poolTotal {
		c.Close()
		return
	}
	if p.conns == nil {
		p.conns = make(map[poolKey][]pooledConn)
	}
	p.conns[k] = append(p.conns[k], pooledConn{conn: c, since: time.Now()})
	p.total++
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.sweepEvery(), p.expire)
	}
}

// expire is the sweep timer's function: it closes expired connections and
// re-arms itself while any are left.
func (p *upstreamPool) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked(time.Now())
	p.sweep = nil
	if p.total > 0 {
		p.sweep = time.AfterFunc(p.sweepEvery(), p.expire)
	}
}

// take returns a live idle connection for k, or nil. A connection the server
// closed (or sent anything on) in the meantime is dropped.
func (p *upstreamPool) take(k poolKey) *tls.Conn {
	for {
		p.mu.Lock()
		list := p.conns[k]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := list[len(list)-1]
		p.conns[k] = list[:len(list)-1]
		p.total--
		p.mu.Unlock()
		if time.Since(pc.since) < p.idleTime() && alive(pc.conn) {
			return pc.conn
		}
		pc.conn.Close()
	}
}

// alive checks an idle connection without blocking: no bytes waiting on its
// socket means the server has not closed it nor sent anything since. Bytes
// waiting may still be harmless (a TLS 1.3 NewSessionTicket or KeyUpdate,
// which crypto/tls consumes itself), so those are read through TLS for at
// most poolProbeDelay: anything that surfaces as data, or an error other
// than the timeout, drops the connection.
func alive(c *tls.Conn) bool {
	switch peekSocket(c.NetConn()) {
	case socketIdle:
		return true
	case socketClosed:
		return false
	}
	c.SetReadDeadline(time.Now().Add(poolProbeDelay))
	var b [1]byte
	_, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	return err != nil && isTimeout(err)
}

// socketState is what peekSocket saw.
type socketState int

const (
	socketUnknown  socketState = iota // cannot tell on this platform
	socketIdle                        // open, nothing to read
	socketReadable                    // bytes are waiting
	socketClosed                      // FIN, reset or closed here
)

func (p *upstreamPool) expireLocked(now time.Time) {
	for k, list := range p.conns {
		keep := list[:0]
		for _, pc := range list {
			if now.Sub(pc.since) < p.idleTime() {
				keep = append(keep, pc)
			} else {
				pc.conn.Close()
				p.total--
			}
		}
		if len(keep) == 0 {
			delete(p.conns, k)
		} else {
			p.conns[k] = keep
		}
	}
}

// size is the number of idle connections held.
func (p *upstreamPool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// closeAll drops every idle connection (shutdown).
func (p *upstreamPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	for _, list := range p.conns {
		for _, pc := range list {
			pc.conn.Close()
		}
	}
	p.conns, p.total = nil, 0
}
