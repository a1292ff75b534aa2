package bump

import (
	"crypto/tls"
	"sync"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// The upstream pool: idle server connections kept between app connections,
// so an app that opens a new connection per request (or sends
// "Connection: close") does not cost a TLS handshake with the server each
// time, as squid keeps its server connections. Only the HTTP/1.1
// intermediary (http1relay.go) puts connections here, and only when their
// last response ended cleanly on its framing.

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

// poolKey identifies interchangeable upstream connections: everything that
// decides who the upstream is and what it was told. Same rule (so the same
// versions, roots, verification and client certificate), same address, same
// verified name, and the same authenticated proxy user, so one user's
// connection never serves another's requests.
type poolKey struct {
	rule *policy.Rule
	addr string
	name string
	user string
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
