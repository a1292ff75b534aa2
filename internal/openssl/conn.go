//go:build openssl && cgo

package openssl

/*
#include <stdlib.h>
#include <string.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// ConnConfig is what differs between two app-facing connections.
type ConnConfig struct {
	// MinVersion and MaxVersion bound the versions (crypto/tls constants).
	MinVersion, MaxVersion uint16
	// Certificate is the leaf, its chain and key; its OpenSSL form is
	// made once per *tls.Certificate.
	Certificate *tls.Certificate
	// NextProtos are the ALPN protocols the server accepts, preferred
	// first. If empty, an app's ALPN offer is not answered.
	NextProtos []string
	// SessionContext keeps sessions apart (at most 32 bytes): a session is
	// resumed only on a connection with the same context.
	SessionContext []byte
}

// State is what a finished handshake agreed.
type State struct {
	Version            uint16 // tls.VersionTLS10 …
	CipherSuite        uint16 // IANA ID
	NegotiatedProtocol string
	DidResume          bool
}

// Conn is a TLS connection run by OpenSSL over another net.Conn.
type Conn struct {
	conn net.Conn

	// mu guards ssl: OpenSSL objects are not safe for concurrent use, and
	// a relay reads and writes at once.
	mu     sync.Mutex
	ssl    *C.SSL
	alpn   unsafe.Pointer // C copy of the ALPN list, freed with ssl
	closed bool
	state  State

	wmu sync.Mutex // orders writes on conn
	rmu sync.Mutex // one reader at a time
}

// Server starts the server side of a TLS connection on conn; the
// handshake runs on the first call to Handshake, Read or Write.
func (c *Ctx) Server(conn net.Conn, cfg ConnConfig) (*Conn, error) {
	if !c.server {
		return nil, errors.New("openssl: Server on a client Ctx")
	}
	oc, err := c.cert(cfg.Certificate)
	if err != nil {
		return nil, err
	}
	tc := &Conn{conn: conn, ssl: C.tb_new_ssl(c.ctx, 1)}
	if tc.ssl == nil {
		return nil, errors.New("openssl: SSL_new failed")
	}
	ok := C.tb_min_max(tc.ssl, C.int(cfg.MinVersion), C.int(cfg.MaxVersion)) == 1
	if ok {
		var chain **C.X509
		if len(oc.chain) > 0 {
			chain = (**C.X509)(C.malloc(C.size_t(len(oc.chain)) * C.size_t(unsafe.Sizeof(oc.leaf))))
			copy(unsafe.Slice(chain, len(oc.chain)), oc.chain)
		}
		ok = C.tb_use_cert(tc.ssl, oc.leaf, chain, C.int(len(oc.chain)), oc.key.p) == 1
		C.free(unsafe.Pointer(chain))
		runtime.KeepAlive(oc)
	}
	if ok && len(cfg.SessionContext) > 0 {
		ok = C.SSL_set_session_id_context(tc.ssl, (*C.uchar)(cbytes(cfg.SessionContext)), C.uint(len(cfg.SessionContext))) == 1
	}
	if ok && len(cfg.NextProtos) > 0 {
		wire := alpnWire(cfg.NextProtos)
		tc.alpn = C.CBytes(wire)
		ok = C.tb_set_alpn(tc.ssl, tc.alpn) == 1
	}
	if !ok {
		tc.free()
		return nil, fmt.Errorf("openssl: configure connection (versions %#x-%#x)", cfg.MinVersion, cfg.MaxVersion)
	}
	return tc, nil
}

// alpnWire is protos with a 2-byte total length first, then each protocol
// with its 1-byte length (RFC 7301's list), as shim.c's callback reads it.
func alpnWire(protos []string) []byte {
	var b []byte
	for _, p := range protos {
		if len(p) == 0 || len(p) > 255 {
			continue
		}
		b = append(append(b, byte(len(p))), p...)
	}
	return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
}

// free releases the C side; c.mu is held or c is not shared yet.
func (c *Conn) free() {
	if c.ssl != nil {
		C.SSL_free(c.ssl)
		c.ssl = nil
	}
	if c.alpn != nil {
		C.free(c.alpn)
		c.alpn = nil
	}
}

// bufPool holds the buffers of network reads and BIO drains.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 17*1024); return &b }}

// step runs one OpenSSL operation with in fed first, and writes what it
// produced (handshake messages, records, alerts) to the connection.
func (c *Conn) step(op C.int, in, buf []byte) (int, C.int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, 0, net.ErrClosed
	}
	var sslerr C.int
	var ecode C.ulong
	var pending C.size_t
	r := C.tb_io(c.ssl, op, cbytes(in), C.int(len(in)), cbytes(buf), C.int(len(buf)), &sslerr, &ecode, &pending)
	var out *[]byte
	var outLen int
	if pending > 0 {
		out, outLen = c.drainLocked(int(pending))
	}
	c.mu.Unlock()
	if out != nil {
		werr := c.writeOut((*out)[:outLen])
		bufPool.Put(out)
		if werr != nil && r > 0 {
			return 0, sslerr, werr
		}
	}
	if r <= 0 && sslerr != C.SSL_ERROR_WANT_READ && sslerr != C.SSL_ERROR_ZERO_RETURN {
		return int(r), sslerr, sslError(opName(op), sslerr, ecode)
	}
	return int(r), sslerr, nil
}

func opName(op C.int) string {
	switch op {
	case C.TB_HANDSHAKE:
		return "handshake"
	case C.TB_READ:
		return "read"
	case C.TB_WRITE:
		return "write"
	}
	return "shutdown"
}

// drainLocked takes n pending bytes out of the write BIO.
func (c *Conn) drainLocked(n int) (*[]byte, int) {
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		b := make([]byte, n)
		bp = &b
	}
	b := (*bp)[:cap(*bp)]
	*bp = b
	got := C.tb_drain(c.ssl, unsafe.Pointer(&b[0]), C.int(n))
	if got < 0 {
		got = 0
	}
	return bp, int(got)
}

func (c *Conn) writeOut(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// Handshake runs the TLS handshake; ctx ending aborts it.
func (c *Conn) Handshake(ctx context.Context) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
		defer stop()
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var in []byte
	for {
		r, sslerr, err := c.step(C.TB_HANDSHAKE, in, nil)
		if err != nil {
			return err
		}
		if r == 1 {
			c.mu.Lock()
			c.state = c.stateLocked()
			c.mu.Unlock()
			return nil
		}
		if sslerr != C.SSL_ERROR_WANT_READ {
			return fmt.Errorf("openssl handshake: SSL_get_error %d", int(sslerr))
		}
		n, err := c.conn.Read(*bp)
		if n == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		in = (*bp)[:n]
	}
}

func (c *Conn) stateLocked() State {
	s := State{
		Version:     uint16(C.tb_version(c.ssl)),
		CipherSuite: uint16(C.tb_cipher_id(c.ssl)),
		DidResume:   C.SSL_session_reused(c.ssl) == 1,
	}
	var p *C.uchar
	var n C.uint
	C.tb_alpn(c.ssl, &p, &n)
	if n > 0 {
		s.NegotiatedProtocol = C.GoStringN((*C.char)(unsafe.Pointer(p)), C.int(n))
	}
	return s
}

// State is what the handshake agreed; zero before it finished.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Read reads application data. The caller's buffer takes the ciphertext
// first (when it is large enough), so an idle connection holds no buffer
// of its own while it waits.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		n, sslerr, err := c.step(C.TB_READ, nil, p) // what an earlier feed left decrypted or buffered
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
		if sslerr == C.SSL_ERROR_ZERO_RETURN {
			return 0, io.EOF // the app's close_notify
		}
		// SSL_ERROR_WANT_READ: more ciphertext needed.
		land := p
		var bp *[]byte
		if len(p) < 512 {
			bp = bufPool.Get().(*[]byte)
			land = *bp
		}
		m, rerr := c.conn.Read(land)
		if m == 0 {
			if bp != nil {
				bufPool.Put(bp)
			}
			if rerr == nil {
				continue
			}
			return 0, rerr
		}
		// Fed and read in one call; land may be p itself, which tb_io
		// has copied into the BIO before SSL_read writes p.
		n, sslerr, err = c.step(C.TB_READ, land[:m], p)
		if bp != nil {
			bufPool.Put(bp)
		}
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
		if sslerr == C.SSL_ERROR_ZERO_RETURN {
			return 0, io.EOF
		}
		if rerr != nil {
			return 0, rerr
		}
	}
}

// maxWrite is how much plaintext one SSL_write takes: four full records.
const maxWrite = 4 * 16384

// Write encrypts p and writes the records.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxWrite)]
		n, _, err := c.step(C.TB_WRITE, nil, chunk)
		if err != nil {
			return written, err
		}
		if n != len(chunk) {
			return written, fmt.Errorf("openssl write: %d of %d bytes", n, len(chunk))
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// CloseWrite sends close_notify; the connection beneath stays open (see
// NetConn).
func (c *Conn) CloseWrite() error {
	_, _, err := c.step(C.TB_SHUTDOWN, nil, nil)
	return err
}

// Close sends close_notify after a finished handshake (within 5 s, as
// crypto/tls does) and closes the connection beneath.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	var out *[]byte
	var outLen int
	if c.state.Version != 0 {
		var sslerr C.int
		var ecode C.ulong
		var pending C.size_t
		C.tb_io(c.ssl, C.TB_SHUTDOWN, nil, 0, nil, 0, &sslerr, &ecode, &pending)
		if pending > 0 {
			out, outLen = c.drainLocked(int(pending))
		}
	}
	c.closed = true
	c.free()
	c.mu.Unlock()
	if out != nil {
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.writeOut((*out)[:outLen])
		bufPool.Put(out)
	}
	return c.conn.Close()
}

// NetConn returns the connection beneath.
func (c *Conn) NetConn() net.Conn { return c.conn }

func (c *Conn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
