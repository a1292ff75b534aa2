package bump

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// TLS 1.0 with a CBC suite is what most legacy apps negotiate, and crypto/tls
// (like OpenSSL) splits every application-data write into a 1-byte record
// and the rest (the 1/n-1 split against BEAST, CVE-2011-3389). Unhelped, that
// costs the relay a second write syscall per message towards the app, and,
// for what the app sends, a second read and a second upstream record. The
// two helpers below give the relay one syscall per message each way.

// batchConn sits under the app-facing tls.Conn and, between start and
// flush, gathers the records one tls.Conn.Write produces into one write.
type batchConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool
	buf *[]byte // borrowed from batchBuffers while on
}

// batchBuffers hold one full-size TLS record plus the 1-byte record and
// their overhead.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, relayBurstSize+1024); return &b }}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on {
		return b.Conn.Write(p)
	}
	if b.buf == nil {
		b.buf = batchBuffers.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// start gathers writes until flush.
func (b *batchConn) start() {
	b.mu.Lock()
	b.on = true
	b.mu.Unlock()
}

// flush writes what was gathered and stops gathering.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = false
	if b.buf == nil {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	batchBuffers.Put(b.buf)
	b.buf = nil
	return err
}

// NetConn returns the wrapped connection, for half-close and reset.
func (b *batchConn) NetConn() net.Conn { return b.Conn }

// splitWait bounds how long the relay waits for the rest of a 1/n-1 split
// message after its 1-byte record: the two records are sent back to back, so
// the rest is normally already read; a message of exactly one byte is not
// split, and then this is the delay it gets.
const splitWait = 2 * time.Millisecond

// splitsRecords reports whether the app's side of c uses the 1/n-1 split.
func splitsRecords(c net.Conn) bool {
	var version, suite uint16
	switch tc := c.(type) {
	case *tls.Conn:
		cs := tc.ConnectionState()
		version, suite = cs.Version, cs.CipherSuite
	case interface{ versionSuite() (uint16, uint16) }: // the legacy engine's
		version, suite = tc.versionSuite()
	default:
		return false
	}
	return version == tls.VersionTLS10 && isCBC(suite)
}

// isCBC reports the CBC suites among legacyClientCipherSuites.
func isCBC(id uint16) bool {
	switch id {
	case tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA:
		return true
	}
	return false
}

// batcherOf returns the batchConn under an app-facing tls.Conn, if any.
func batcherOf(c net.Conn) *batchConn {
	if tc, ok := c.(*tls.Conn); ok {
		b, _ := tc.NetConn().(*batchConn)
		return b
	}
	return nil
}
