package bump

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scriptedConn is an in-memory net.Conn: reads return script in chunks of
// at most chunk bytes (0: all at once), then io.EOF; writes are recorded.
type scriptedConn struct {
	script  []byte
	chunk   int
	written bytes.Buffer
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	if len(c.script) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if c.chunk > 0 && n > c.chunk {
		n = c.chunk
	}
	n = copy(p[:n], c.script)
	c.script = c.script[n:]
	return n, nil
}

func (c *scriptedConn) Write(p []byte) (int, error)      { return c.written.Write(p) }
func (c *scriptedConn) Close() error                     { return nil }
func (c *scriptedConn) LocalAddr() net.Addr              { return scriptedAddr{} }
func (c *scriptedConn) RemoteAddr() net.Addr             { return scriptedAddr{} }
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

type scriptedAddr struct{}

func (scriptedAddr) Network() string { return "memory" }
func (scriptedAddr) String() string  { return "memory" }

// captureClientHello returns the first flight of a real crypto/tls client
// with cfg: its ClientHello record(s), as an app would send them.
func captureClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c := &scriptedConn{}
	cfg = cfg.Clone()
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg.ServerName = "origin.test"
	}
	_ = tls.Client(c, cfg).Handshake() // fails at EOF, after the ClientHello is written
	if c.written.Len() == 0 {
		t.Fatalf("tls.Client wrote no ClientHello for %+v", cfg)
	}
	return c.written.Bytes()
}

// helloSeeds are real ClientHellos from Go clients, by name.
func helloSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	v := func(minV, maxV uint16) *tls.Config {
		return &tls.Config{MinVersion: minV, MaxVersion: maxV} //nolint:gosec // the test plays a legacy app
	}
	rsaOnly := v(tls.VersionTLS10, tls.VersionTLS10)
	rsaOnly.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}
	alpn := v(tls.VersionTLS12, tls.VersionTLS13)
	alpn.NextProtos = []string{"h2", "http/1.1"}
	ip := v(tls.VersionTLS12, tls.VersionTLS12)
	ip.ServerName = "127.0.0.1" // an IP literal: no SNI on the wire
	return map[string][]byte{
		"tls10":          captureClientHello(t, v(tls.VersionTLS10, tls.VersionTLS10)),
		"tls10-rsa-kex":  captureClientHello(t, rsaOnly),
		"tls11":          captureClientHello(t, v(tls.VersionTLS11, tls.VersionTLS11)),
		"tls12":          captureClientHello(t, v(tls.VersionTLS12, tls.VersionTLS12)),
		"tls13":          captureClientHello(t, v(tls.VersionTLS13, tls.VersionTLS13)),
		"tls10-13":       captureClientHello(t, v(tls.VersionTLS10, tls.VersionTLS13)),
		"tls12-13-alpn":  captureClientHello(t, alpn),
		"tls12-no-sni":   captureClientHello(t, ip),
		"sslv2-hello":    sslv2Hello,
		"sslv2-short":    []byte("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"),
		"plain-http":     []byte("GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n"),
		"tls-junk":       []byte("\x16\x03\x01\x00\x05hello"),
		"random-garbage": []byte(strings.Repeat("\x00\xff\x16\x03garbage", 64)),
		"empty":          nil,
	}
}

// sortedKeys returns m's keys in order, so seeds are added reproducibly.
func sortedKeys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}

// sslv2Hello is an SSLv2-compatible ClientHello (RFC 6101 appendix E.2) for
// TLS 1.0 as Java 6 with SSLv2Hello enabled sends it: record length 0x22,
// type 1, version 3.1, three cipher specs, no session id, a 16-byte challenge.
var sslv2Hello = []byte("\x80\x22\x01\x03\x01\x00\x09\x00\x00\x00\x10" +
	"\x00\x00\x2f\x00\x00\x35\x00\x00\x0a" +
	"0123456789abcdef")

// FuzzPeekClientHello feeds arbitrary bytes, in arbitrary chunks, to the
// ClientHello peek: it must never panic, hang or write to the app, and what
// it records must be a prefix of what the app sent (it is replayed later).
func FuzzPeekClientHello(f *testing.F) {
	seeds := helloSeeds(f)
	for _, name := range sortedKeys(seeds) {
		b := seeds[name]
		f.Add(b, uint8(0))
		f.Add(b, uint8(1))
		if len(b) > 10 {
			f.Add(b[:len(b)/2], uint8(7)) // half a ClientHello
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		c := &scriptedConn{script: data, chunk: int(chunk)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		type result struct {
			h   *clientHello
			err error
		}
		done := make(chan result, 1)
		go func() {
			h, err := peekClientHello(ctx, c)
			done <- result{h, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("peekClientHello(%q) did not return in 10 s", data)
		}
		if c.written.Len() > 0 {
			t.Errorf("peekClientHello(%q) wrote %q to the app; the peek must leave no trace", data, c.written.Bytes())
		}
		if r.err == nil {
			if r.h == nil || r.h.info == nil {
				t.Fatalf("peekClientHello(%q) = nil hello, nil error", data)
			}
			if !bytes.HasPrefix(data, r.h.recorded) || len(r.h.recorded) == 0 {
				t.Fatalf("peekClientHello(%q): recorded %q is not a non-empty prefix of the input", data, r.h.recorded)
			}
			_ = r.h.maxOffered()
			return
		}
		var he *helloError
		if !errors.As(r.err, &he) {
			t.Fatalf("peekClientHello(%q): err = %T %v, want *helloError", data, r.err, r.err)
		}
		if !bytes.HasPrefix(data, he.recorded) {
			t.Fatalf("peekClientHello(%q): recorded %q is not a prefix of the input", data, he.recorded)
		}
		switch {
		case errors.Is(r.err, errNotTLS):
			if len(data) == 0 || data[0] == 0x16 {
				t.Errorf("peekClientHello(%q) = errNotTLS for a TLS handshake record", data)
			}
			if !bytes.Equal(he.recorded, data[:len(he.recorded)]) || len(he.recorded) == 0 {
				t.Errorf("peekClientHello(%q): errNotTLS without the recorded bytes to tunnel", data)
			}
		case errors.Is(r.err, errSSLv2Hello):
			if !isSSLv2Hello(data) {
				t.Errorf("peekClientHello(%q) = errSSLv2Hello, but isSSLv2Hello(input) = false", data)
			}
		}
		if r.err.Error() == "" {
			t.Errorf("peekClientHello(%q): empty error text", data)
		}
	})
}

// TestPeekClientHelloSeeds pins what the peek makes of the real ClientHellos
// the fuzzer starts from.
func TestPeekClientHelloSeeds(t *testing.T) {
	seeds := helloSeeds(t)
	for _, tt := range []struct {
		seed   string
		wantHi uint16 // highest version offered; 0: an error
		sni    string
		errIs  error
	}{
		{"tls10", tls.VersionTLS10, "origin.test", nil},
		{"tls10-rsa-kex", tls.VersionTLS10, "origin.test", nil},
		{"tls11", tls.VersionTLS11, "origin.test", nil},
		{"tls12", tls.VersionTLS12, "origin.test", nil},
		{"tls13", tls.VersionTLS13, "origin.test", nil},
		{"tls10-13", tls.VersionTLS13, "origin.test", nil},
		{"tls12-13-alpn", tls.VersionTLS13, "origin.test", nil},
		{"tls12-no-sni", tls.VersionTLS12, "", nil},
		{"sslv2-hello", 0, "", errSSLv2Hello},
		{"sslv2-short", 0, "", errSSLv2Hello},
		{"plain-http", 0, "", errNotTLS},
		{"random-garbage", 0, "", errNotTLS},
	} {
		for _, chunk := range []int{0, 1, 5} {
			t.Run(tt.seed+"/chunk"+strconv.Itoa(chunk), func(t *testing.T) {
				data := seeds[tt.seed]
				h, err := peekClientHello(context.Background(), &scriptedConn{script: data, chunk: chunk})
				if tt.errIs != nil {
					if !errors.Is(err, tt.errIs) {
						t.Fatalf("peekClientHello(%s) err = %v, want %v", tt.seed, err, tt.errIs)
					}
					return
				}
				if err != nil {
					t.Fatalf("peekClientHello(%s): %v", tt.seed, err)
				}
				if got := h.maxOffered(); got != tt.wantHi {
					t.Errorf("peekClientHello(%s): max offered = %s, want %s", tt.seed, versionName(got), versionName(tt.wantHi))
				}
				if h.info.ServerName != tt.sni {
					t.Errorf("peekClientHello(%s): SNI = %q, want %q", tt.seed, h.info.ServerName, tt.sni)
				}
				if !bytes.Equal(h.recorded, data) {
					t.Errorf("peekClientHello(%s): recorded %d bytes, want the whole %d-byte ClientHello", tt.seed, len(h.recorded), len(data))
				}
			})
		}
	}
}

// splitTargetTests are CONNECT targets and what splitTarget makes of them
// with a default port of -1 (CONNECT) or 80 (plain http://).
var splitTargetTests = []struct {
	in       string
	def      int
	host     string
	port     int
	wantNote string
}{
	{"origin.test:443", -1, "origin.test", 443, ""},
	{"origin.test", -1, "origin.test", -1, "no port"},
	{"origin.test", 80, "origin.test", 80, ""},
	{"127.0.0.1:8443", -1, "127.0.0.1", 8443, ""},
	{"[::1]:443", -1, "::1", 443, ""},
	{"[::1]", 80, "::1", 80, ""},
	{"origin.test:0", -1, "origin.test", -1, "port 0"},
	{"origin.test:65536", -1, "origin.test", -1, "port too big"},
	{"origin.test:https", -1, "origin.test", -1, "named port"},
	{":443", -1, "", 443, "empty host: refused by handleConnect"},
	{"::::", -1, "::::", -1, ""},
	{"", -1, "", -1, ""},
}

func TestSplitTarget(t *testing.T) {
	for _, tt := range splitTargetTests {
		host, port := splitTarget(tt.in, tt.def)
		if host != tt.host || port != tt.port {
			t.Errorf("splitTarget(%q, %d) = %q, %d; want %q, %d", tt.in, tt.def, host, port, tt.host, tt.port)
		}
	}
}

// FuzzSplitTarget: splitTarget never panics, a port it returns is the
// default, -1 or a valid port, and a valid host:port survives a round trip
// through net.JoinHostPort (which is how the upstream address is built).
func FuzzSplitTarget(f *testing.F) {
	for _, tt := range splitTargetTests {
		f.Add(tt.in)
	}
	f.Add("[fe80::1%25eth0]:443")
	f.Add("origin.test:+443")
	f.Add("origin.test:0443")
	f.Fuzz(func(t *testing.T, in string) {
		const def = -2
		host, port := splitTarget(in, def)
		switch {
		case port == def, port == -1:
			return
		case port < 1 || port > 65535:
			t.Fatalf("splitTarget(%q) port = %d, want 1-65535, -1 or the default", in, port)
		}
		joined := net.JoinHostPort(host, strconv.Itoa(port))
		if h2, p2 := splitTarget(joined, def); h2 != host || p2 != port {
			t.Fatalf("splitTarget(%q) = %q, %d, but splitTarget(%q) = %q, %d", in, host, port, joined, h2, p2)
		}
	})
}

// FuzzSSLv2Detector: isSSLv2Hello never panics, never claims a TLS record,
// and the peek path reports exactly what the detector says.
func FuzzSSLv2Detector(f *testing.F) {
	f.Add(sslv2Hello)
	f.Add([]byte("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"))
	f.Add([]byte("\x16\x03\x01\x00\x05hello"))
	f.Add([]byte("\x80\x00\x01"))
	f.Add([]byte("\x80"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v2 := isSSLv2Hello(b)
		if v2 && b[0] == 0x16 {
			t.Fatalf("isSSLv2Hello(%q) = true for a TLS handshake record", b)
		}
		_, err := peekClientHello(context.Background(), &scriptedConn{script: b})
		if got := errors.Is(err, errSSLv2Hello); got != v2 {
			t.Fatalf("peekClientHello(%q): SSLv2 error = %v, isSSLv2Hello = %v (err %v)", b, got, v2, err)
		}
	})
}

// FuzzReadSSLv2Hello: the legacy engine's reader of an SSLv2-format hello
// (its fixed fields only) never panics, reads no further than its one
// record, and what it accepts is consistent: the record is exactly the
// length its header says, the versions are TLS 1.0 to 1.2, and every suite
// came from a 3-byte spec.
func FuzzReadSSLv2Hello(f *testing.F) {
	f.Add(sslv2Hello)
	f.Add([]byte("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"))
	f.Add([]byte("\x80\x0b\x01\x03\x01\x00\x00\x00\x00\x00\x10"))
	f.Add([]byte("\x80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		head := b[:min(len(b), 5)]
		c := &scriptedConn{script: b[len(head):], chunk: 7}
		h, err := readSSLv2Hello(c, head, time.Time{})
		if err != nil {
			return
		}
		total := 2 + (int(b[0]&0x7f)<<8 | int(b[1]))
		if len(h.recorded) != total || !bytes.Equal(h.recorded, b[:total]) {
			t.Fatalf("recorded %d bytes, the header says %d", len(h.recorded), total)
		}
		if len(h.info.SupportedVersions) == 0 || h.maxOffered() > tls.VersionTLS12 {
			t.Fatalf("versions %x", h.info.SupportedVersions)
		}
		for _, v := range h.info.SupportedVersions {
			if v < tls.VersionTLS10 {
				t.Fatalf("version %x below TLS 1.0 accepted", v)
			}
		}
		specs := int(binary.BigEndian.Uint16(b[5:7]))
		if len(h.info.CipherSuites) > specs/3 {
			t.Fatalf("%d suites from %d bytes of specs", len(h.info.CipherSuites), specs)
		}
	})
}
