package bump

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/tlsbridge/tlsbridge/policy"
)

// clientHello is what tlsbridge learns from an app's ClientHello before it
// decides what to do with the connection.
type clientHello struct {
	info     *tls.ClientHelloInfo
	recorded []byte // every byte read from the app so far, to replay
	sslv2    bool   // an SSLv2-format hello (readSSLv2Hello): the legacy engine's
}

// maxOffered is the highest TLS version the app offered.
func (h *clientHello) maxOffered() uint16 {
	_, hi := offeredRange(h.info.SupportedVersions)
	return hi
}

// errUnservable is a ClientHello tlsbridge cannot answer: SSL 3.0 only, or
// no cipher suite in common (classify says which).
var errUnservable = errors.New("the app's ClientHello cannot be served")

// errClientVersion is a ClientHello whose versions the rule's client.min_tls
// and max_tls exclude; see clientVersionError.
var errClientVersion = errors.New("the app's TLS versions are outside client.min_tls/max_tls")

// clientVersionError is a ClientHello whose versions the client table of a
// rule or listener excludes. It wraps errClientVersion.
type clientVersionError struct {
	name     string // the rule or listener
	lo, hi   uint16 // what the app offers
	min, max uint16 // what its client table allows
}

func (e *clientVersionError) Error() string {
	return fmt.Sprintf("%v: it offers %s-%s, %s allows %s-%s", errClientVersion,
		versionName(e.lo), versionName(e.hi), section(e.name, "client"), versionName(e.min), versionName(e.max))
}

func (e *clientVersionError) Unwrap() error { return errClientVersion }

// hint says which key of which table lets the app in.
func (e *clientVersionError) hint() string {
	if e.hi < e.min {
		return fmt.Sprintf("lower client.min_tls to what the app offers if it must be served: set `min_tls = %q` in %s (the app-facing leg is the loopback one)",
			policy.TLSVersionName(e.hi), section(e.name, "client"))
	}
	return fmt.Sprintf("raise client.max_tls to what the app offers: set `max_tls = %q` in %s", policy.TLSVersionName(e.lo), section(e.name, "client"))
}

// servable reports errUnservable for a hello no app-facing config accepts,
// and a *clientVersionError (naming the client table of name, a rule or
// listener) for one that c excludes. Checking here refuses such an app
// before an upstream is dialled for it.
func (h *clientHello) servable(c policy.ClientTLS, name string) error {
	lo, hi := offeredRange(h.info.SupportedVersions)
	if hi < tls.VersionTLS10 || !sharesSuite(h.info.CipherSuites) {
		return errUnservable
	}
	if hi < c.MinVersion || lo > c.MaxVersion {
		return &clientVersionError{name: name, lo: lo, hi: hi, min: c.MinVersion, max: c.MaxVersion}
	}
	return nil
}

// refuse answers an unservable hello with the fatal alert crypto/tls would
// have sent (protocol_version or handshake_failure), so the app reports a
// TLS error rather than a dropped connection.
func (h *clientHello) refuse(c net.Conn, err error) {
	code := byte(alertHandshakeFailure)
	if errors.Is(err, errClientVersion) || h.maxOffered() < tls.VersionTLS10 {
		code = alertProtocolVersion
	}
	rv := []byte{0x03, 0x01} // the record version of the app's hello, if read
	if len(h.recorded) >= 3 {
		rv = h.recorded[1:3]
	}
	c.Write([]byte{0x15, rv[0], rv[1], 0x00, 0x02, 0x02, code}) // alert record: fatal, code
}

// alpn is the app's ALPN offer as tlsbridge passes it on (see appALPN).
func (h *clientHello) alpn() []string {
	return appALPN(h.info.SupportedProtos, h.maxOffered())
}

// serve starts the app-facing TLS server on c: the peeked ClientHello is
// replayed first, and writes go through a batchConn (see batch.go).
//
// An app below TLS 1.3 that offers P-256 gets its ECDHE on P-256: Go's
// P-256 is assembly with a precomputed base-point table and costs less than
// its X25519, which Go's server would otherwise pick first whatever
// Config.CurvePreferences says. TLS 1.3 apps keep Go's choice, because their
// key share is usually X25519 and another curve would cost a
// HelloRetryRequest round trip.
func (h *clientHello) serve(c net.Conn, cfg *tls.Config) *tls.Conn {
	if h.maxOffered() < tls.VersionTLS13 && slices.Contains(h.info.SupportedCurves, tls.CurveP256) {
		cfg.CurvePreferences = p256Only
	}
	return tls.Server(&batchConn{Conn: &replayConn{Conn: c, pending: h.recorded}}, cfg)
}

// p256Only is the curve list of apps below TLS 1.3 (see serve).
var p256Only = []tls.CurveID{tls.CurveP256}

// appALPN is the app's ALPN offer as tlsbridge passes it on: without "h2"
// when the app cannot speak TLS 1.2, since HTTP/2 requires TLS 1.2 or later
// (RFC 9113 section 9.2) and a strict client or server rejects it below; such
// an app (curl --tlsv1.0 offers h2 anyway) then gets http/1.1.
func appALPN(offer []string, maxVersion uint16) []string {
	if maxVersion >= tls.VersionTLS12 || !slices.Contains(offer, "h2") {
		return offer
	}
	return slices.DeleteFunc(slices.Clone(offer), func(p string) bool { return p == "h2" })
}

// recordingConn records what crypto/tls reads and swallows what it writes, so
// the peek handshake leaves no trace on the wire.
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.buf.Write(p[:n])
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) { return len(p), nil }

// errHelloCaptured stops the peek handshake once the ClientHello is parsed.
var errHelloCaptured = errors.New("client hello captured")

// peekClientHello reads the app's ClientHello without consuming it: crypto/tls
// parses it (no hand-written parser to keep correct), the handshake is aborted
// in GetConfigForClient, and the recorded bytes are returned for replay.
// Errors are errNotTLS (with the bytes recorded), errSSLv2Hello, or I/O errors.
func peekClientHello(ctx context.Context, conn net.Conn) (*clientHello, error) {
	rc := &recordingConn{Conn: conn}
	var info *tls.ClientHelloInfo
	srv := tls.Server(rc, &tls.Config{
		// Accept every version at parse time: the decision and the real
		// version check come later, on the real handshake.
		MinVersion: tls.VersionTLS10, //nolint:gosec // parse-only handshake, aborted before any key exchange
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			info = hi
			return nil, errHelloCaptured
		},
	})
	err := srv.HandshakeContext(ctx)
	if info != nil {
		return &clientHello{info: info, recorded: rc.buf.Bytes()}, nil
	}
	b := rc.buf.Bytes()
	switch {
	case isSSLv2Hello(b):
		return nil, &helloError{kind: errSSLv2Hello, recorded: b}
	case len(b) > 0 && b[0] != 0x16: // not a TLS handshake record
		return nil, &helloError{kind: errNotTLS, recorded: b}
	case len(b) == 0 && errors.Is(err, io.EOF):
		return nil, &helloError{kind: io.EOF}
	}
	return nil, &helloError{kind: err, recorded: b}
}

// Sentinel kinds of helloError.
var (
	errNotTLS     = errors.New("the app did not start a TLS handshake")
	errSSLv2Hello = errors.New("the app sent an SSLv2-format ClientHello, which crypto/tls cannot serve")
)

// helloError is a failed peek; recorded holds the bytes read, so a non-TLS
// stream can still be tunnelled untouched.
type helloError struct {
	kind     error
	recorded []byte
}

func (e *helloError) Error() string { return "read client hello: " + e.kind.Error() }
func (e *helloError) Unwrap() error { return e.kind }

// isSSLv2Hello reports the SSLv2-compatible ClientHello format (RFC 6101
// appendix E.2): a 2-byte length with the high bit set, message type 1, then
// the version.
// Java 6 sends it when SSLv2Hello is enabled, and old OpenSSL with SSLv2 on.
func isSSLv2Hello(b []byte) bool {
	if len(b) < 4 || b[0]&0x80 == 0 || b[2] != 0x01 {
		return false
	}
	length := int(b[0]&0x7f)<<8 | int(b[1])
	// The version's major byte: 0x00 (SSL 2.0's 0x0002) or 0x03 (an SSL 3 /
	// TLS client in SSLv2-compatible format); the body holds at least the
	// version and three length fields.
	return (b[3] == 0x00 || b[3] == 0x03) && length >= 9
}

// replayConn serves the recorded ClientHello bytes before reading on.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the wrapped connection, for half-close.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
