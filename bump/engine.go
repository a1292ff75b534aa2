package bump

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// The app-facing TLS engines. crypto/tls serves every app by default; a
// binary built with the tag "openssl" (make build-openssl) also has the
// legacy engine (engine_openssl.go, internal/openssl), which takes the
// handshakes crypto/tls cannot do or does slowly:
//
//   - an SSLv2-compatible ClientHello (Java 6's default, old OpenSSL);
//   - an app below TLS 1.2 that can only resume by session ID (no
//     session_ticket extension: Windows XP, Java 6-12) or has only RSA key
//     exchange, whose RSA decryption costs OpenSSL about a fifth of Go's.
//
// An app below TLS 1.2 with ECDHE and tickets stays with crypto/tls:
// measured with the load tool, its new connections cost 0.61 ms of proxy
// CPU there and 1.08 ms under OpenSSL 3.0 (whose per-connection object
// setup is dear), and it resumes by ticket with either.
//
// Everything else about the connection — the rule, the minted leaf, the
// upstream, the relay — is the same for both. The engine is per Server,
// not per snapshot: its session cache survives reloads, and a session
// resumes only under the CA and leaf name it was made for (sessionContext).

// appTLS is an app-facing TLS connection of either engine.
type appTLS interface {
	net.Conn
	CloseWrite() error // close_notify; the connection beneath stays open
	NetConn() net.Conn // the connection beneath, for half-close and reset
}

// appState is what an app-facing handshake agreed, from either engine.
type appState struct {
	version, cipher uint16
	alpn            string
	resumed         bool
	engine          string // "go" or "openssl", the metrics' label
}

// legacyTakes reports whether the legacy engine (when built in) takes
// hello (see the list above): an SSLv2-format hello always; a TLS hello
// topping out below TLS 1.2 that shares a suite with the engine (Debian's
// libssl has no 3DES or RC4: an app offering only those stays with
// crypto/tls, which has 3DES) and either sends no session_ticket
// extension or offers no ECDHE suite.
func legacyTakes(h *clientHello, engineSuites []uint16) bool {
	if h.sslv2 {
		return true
	}
	if h.maxOffered() >= tls.VersionTLS12 {
		return false
	}
	shared, ecdhe := false, false
	for _, o := range h.info.CipherSuites {
		if slices.Contains(engineSuites, o) {
			shared = true
		}
		if isECDHE(o) {
			ecdhe = true
		}
	}
	return shared && (!ecdhe || !slices.Contains(h.info.Extensions, extSessionTicket))
}

// extSessionTicket is the session_ticket extension (RFC 5077).
const extSessionTicket = 35

// isECDHE reports the ECDHE suites among legacyClientCipherSuites
// (upstreamCipherSuites is exactly those, plus the two CBC_SHA256 and the
// 3DES one below), without a name lookup per offered suite.
func isECDHE(id uint16) bool {
	switch id {
	case tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA:
		return true
	}
	return slices.Contains(upstreamCipherSuites, id)
}

// sessionContext keeps legacy sessions apart by CA and leaf name: an app
// resumes only where it would have been shown the same certificate, never
// under a new CA or for another host (RFC 5246 section 7.4.1.2 leaves the
// check to the server).
func sessionContext(caDER []byte, name string) []byte {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(caDER)))
	h.Write(n[:])
	h.Write(caDER)
	io.WriteString(h, name)
	return h.Sum(nil) // 32 bytes, OpenSSL's SSL_MAX_SID_CTX_LENGTH
}

// readSSLv2Hello completes an SSLv2-format ClientHello whose first bytes
// are in b (RFC 6101 appendix E.2: a 2-byte length with the high bit set,
// msg_type 1, version, three lengths, then cipher specs, session ID and
// challenge), reading the rest of its one record from c, and returns what
// tlsbridge decides on: the version and the TLS suites among the specs.
// The record itself is replayed to the engine, which parses it for the
// handshake; this reads only the fixed fields.
func readSSLv2Hello(c net.Conn, b []byte, deadline time.Time) (*clientHello, error) {
	if len(b) < 5 {
		return nil, &helloError{kind: errSSLv2Hello, recorded: b}
	}
	if binary.BigEndian.Uint16(b[3:5]) < tls.VersionTLS10 {
		// SSL 2.0 itself, not a TLS client in SSLv2 format: nothing serves it.
		return nil, &helloError{kind: errSSLv2Hello, recorded: b}
	}
	total := 2 + (int(b[0]&0x7f)<<8 | int(b[1]))
	if len(b) > total {
		// Bytes after the hello before the server spoke: no client does
		// this; refuse rather than guess where the record ends.
		return nil, fmt.Errorf("%w: %d bytes after the record", errSSLv2Hello, len(b)-total)
	}
	rec := make([]byte, total)
	copy(rec, b)
	c.SetReadDeadline(deadline)
	_, err := io.ReadFull(c, rec[len(b):])
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, fmt.Errorf("read SSLv2 hello: %w", err)
	}
	if len(rec) < 11 || rec[2] != 0x01 {
		return nil, fmt.Errorf("%w: too short", errSSLv2Hello)
	}
	vers := binary.BigEndian.Uint16(rec[3:5])
	specs := int(binary.BigEndian.Uint16(rec[5:7]))
	sid := int(binary.BigEndian.Uint16(rec[7:9]))
	chal := int(binary.BigEndian.Uint16(rec[9:11]))
	if specs%3 != 0 || 11+specs+sid+chal != total || chal < 16 || chal > 32 {
		return nil, fmt.Errorf("%w: inconsistent lengths", errSSLv2Hello)
	}
	info := &tls.ClientHelloInfo{}
	for v := uint16(tls.VersionTLS10); v <= min(vers, tls.VersionTLS12); v++ {
		info.SupportedVersions = append([]uint16{v}, info.SupportedVersions...)
	}
	for i := 11; i < 11+specs; i += 3 {
		if rec[i] == 0 { // SSLv2 kinds have a non-zero first byte
			info.CipherSuites = append(info.CipherSuites, binary.BigEndian.Uint16(rec[i+1:i+3]))
		}
	}
	return &clientHello{info: info, recorded: rec, sslv2: true}, nil
}

// legacyConfig is one connection's settings for the legacy engine.
type legacyConfig struct {
	minVersion, maxVersion uint16
	cert                   *tls.Certificate
	protos                 []string
	sessionContext         []byte
}
