package bump

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Relay buffers. A copier blocks in Read most of its life, and whatever
// buffer it blocks with is memory an idle connection holds. So it waits with
// a small buffer of its own (enough for a typical keep-alive request or
// response, so those are forwarded in one read and one write), and borrows a
// pooled buffer sized for one full TLS record (16 KiB of plaintext, RFC 8446
// 5.1) only while a burst is flowing: each read then fills at most one
// buffer and each write produces full-size records. The pooled buffer goes
// back as soon as a read comes back less than half full, i.e. the burst has
// drained.
const (
	relaySmallSize = 2 << 10
	relayBurstSize = 16 << 10
)

// relayBuffers pools the burst buffers so established connections do not
// allocate per transfer.
var relayBuffers = sync.Pool{New: func() any { b := make([]byte, relayBurstSize); return &b }}

// relayStats is what one relay moved.
type relayStats struct {
	in, out atomic.Int64 // app→upstream, upstream→app
	lastIO  atomic.Int64 // unix nanos of the last byte read (HTTP/1.1 stage)

	mu      sync.Mutex
	err     error  // the first failure that ended the relay, if any
	errFrom string // "app", "upstream" or "idle"
}

// fail records the first failure that ended the relay.
func (st *relayStats) fail(from string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err == nil {
		st.err, st.errFrom = err, from
	}
}

// failure returns what ended the relay, if it did not end cleanly.
func (st *relayStats) failure() (string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.errFrom, st.err
}

// relay copies bytes both ways between the app and the upstream until both
// directions end, honouring half-close, and closes both when done. An idle
// connection (no bytes either way for idle) is closed. It carries tunnels,
// non-HTTP protocols inside a bumped connection, h2, and upgraded
// (WebSocket) connections after their 101.
func relay(app, upstream net.Conn, idle time.Duration, st *relayStats) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	w := newIdleWatch(idle, &last, func() {
		st.fail("idle", errIdle)
		app.Close()
		upstream.Close()
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		(&copier{from: "upstream", dst: app, src: upstream, n: &st.out, last: &last, st: st,
			batch: batcherOf(app)}).run()
	}()
	(&copier{from: "app", dst: upstream, src: app, n: &st.in, last: &last, st: st,
		joinSplit: splitsRecords(app)}).run()
	wg.Wait()
	w.stop()
	app.Close()
	upstream.Close()
}

// copier is one direction of a relay; a named type so stacks read well.
type copier struct {
	from     string // "app" or "upstream": the side src is
	st       *relayStats
	dst, src net.Conn
	n        *atomic.Int64
	// batch, when set, gathers the records of one write to dst into one
	// syscall; joinSplit reads the rest of a 1/n-1 split message from src
	// before writing (see batch.go).
	batch     *batchConn
	joinSplit bool
	last      *atomic.Int64
}

func (c *copier) run() {
	small := make([]byte, relaySmallSize)
	var burst *[]byte // borrowed from relayBuffers while a burst flows
	defer func() {
		if burst != nil {
			relayBuffers.Put(burst)
		}
	}()
	for {
		buf := small
		if burst != nil {
			buf = *burst
		}
		nr, rerr := c.src.Read(buf)
		if nr == 1 && rerr == nil && c.joinSplit {
			nr, rerr = c.readRest(buf)
		}
		if nr > 0 {
			c.last.Store(time.Now().UnixNano())
			if c.batch != nil {
				c.batch.start()
			}
			nw, werr := c.dst.Write(buf[:nr])
			if c.batch != nil {
				if err := c.batch.flush(); werr == nil {
					werr = err
				}
			}
			c.n.Add(int64(nw))
			if werr != nil {
				// The other side is gone: stop both directions.
				c.src.Close()
				return
			}
		}
		switch {
		case burst == nil && nr == len(small):
			burst = relayBuffers.Get().(*[]byte) // more is likely waiting
		case burst != nil && nr < len(*burst)/2:
			relayBuffers.Put(burst) // drained: wait with the small buffer
			burst = nil
		}
		if rerr != nil {
			switch {
			case errors.Is(rerr, io.EOF):
				closeWrite(c.dst)
			case errors.Is(rerr, net.ErrClosed):
				// Closed here (idle timeout, shutdown, the other copier).
				c.dst.Close()
			default:
				// A reset or a broken record: pass it on as a reset, not
				// as a clean close_notify, or the other side could take
				// a truncated close-delimited body as complete.
				c.st.fail(c.from, rerr)
				abort(c.dst)
				c.src.Close()
			}
			return
		}
	}
}

// readRest reads the rest of a 1/n-1 split message whose 1-byte record is in
// buf[0], waiting at most splitWait for it.
func (c *copier) readRest(buf []byte) (int, error) {
	c.src.SetReadDeadline(time.Now().Add(splitWait))
	m, err := c.src.Read(buf[1:])
	c.src.SetReadDeadline(time.Time{})
	if err != nil && isTimeout(err) {
		err = nil // a message of one byte: nothing more was sent
	}
	return 1 + m, err
}

// errIdle ends a relay that carried no bytes for the idle timeout.
var errIdle = errors.New("idle timeout")

// abort closes c's TCP connection with a reset (SO_LINGER 0), below any TLS
// layer, so the peer sees the failure instead of a close_notify.
func abort(c net.Conn) {
	for {
		switch cc := c.(type) {
		case *net.TCPConn:
			cc.SetLinger(0)
			cc.Close()
			return
		case *tls.Conn:
			c = cc.NetConn()
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			c.Close()
			return
		}
	}
}

// closeWrite half-closes c: a TLS close_notify and then a TCP FIN, through any
// wrappers, so the peer reads EOF while the other direction keeps flowing.
func closeWrite(c net.Conn) {
	for c != nil {
		switch cc := c.(type) {
		case appTLS: // *tls.Conn or the legacy engine's: close_notify, then the TCP FIN
			if cc.CloseWrite() != nil {
				return
			}
			c = cc.NetConn()
		case interface{ CloseWrite() error }:
			cc.CloseWrite()
			return
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return
		}
	}
}

// idleWatch closes a relay after idle time without traffic, with one timer per
// connection instead of a deadline update per read.
type idleWatch struct {
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool // a firing timer neither re-arms nor reports idle after stop
}

func newIdleWatch(idle time.Duration, last *atomic.Int64, onIdle func()) *idleWatch {
	w := &idleWatch{}
	if idle <= 0 {
		return w
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(idle, func() {
		if w.expired(idle, last) {
			onIdle()
		}
	})
	return w
}

// expired reports whether nothing moved for idle, else re-arms the timer
// for the rest of it; never after stop.
func (w *idleWatch) expired(idle time.Duration, last *atomic.Int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	since := time.Since(time.Unix(0, last.Load()))
	if since >= idle {
		return true
	}
	w.timer.Reset(idle - since)
	return false
}

func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}
