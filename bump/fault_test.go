package bump

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca/catest"
	"github.com/tlsbridge/tlsbridge/policy"
)

// Timeouts of the fault proxy: short, so the faults are quick to prove, and
// long enough for a TLS 1.0 handshake under the race detector.
const (
	faultHandshakeTimeout = 1500 * time.Millisecond
	faultDialTimeout      = 2 * time.Second
)

// loopbackDial is Config.Dial for tests: loopback addresses are dialled, any
// other name fails like an NXDOMAIN, so no test ever leaves the machine.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// hangingServer accepts TCP connections and never says a word: an upstream
// whose TLS stack is wedged.
func hangingServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// resettingServer is an origin (certificate for origin.test, signed by the
// CA in caFile) that answers every request with a Content-Length of 1 MiB
// (or none: a close-delimited body when closeDelimited), sends sent bytes
// of it and then resets the TCP connection (SO_LINGER 0), no close_notify.
func resettingServer(t testing.TB, sent int, closeDelimited bool) (addr, caFile string) {
	t.Helper()
	oca := catest.New(t)
	caFile = oca.CertPath() // catest keeps the CA on disk
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{catest.ServerCert(t, oca, "origin.test")},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(raw, cfg)
				if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
					return
				}
				head := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n"
				if closeDelimited {
					head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
				}
				io.WriteString(tc, head+strings.Repeat("x", sent))
				time.Sleep(50 * time.Millisecond) // let the bytes reach the proxy before the RST
				raw.(*net.TCPConn).SetLinger(0)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), caFile
}

// goodLoop runs a legacy app that keeps making requests through p until
// stop is called, which returns how many succeeded and every failure.
func goodLoop(t testing.TB, p *proxy, url string) (stop func() (ok int, errs []error)) {
	t.Helper()
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
	done := make(chan struct{})
	var (
		wg  sync.WaitGroup
		n   int
		bad []error
	)
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := client.Get(url)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && (resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "hello from origin")) {
					err = fmt.Errorf("status %d, body %q", resp.StatusCode, b)
				}
			}
			if err != nil {
				bad = append(bad, fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err))
				continue
			}
			n++
		}
	})
	return func() (int, []error) {
		close(done)
		wg.Wait()
		return n, bad
	}
}

// readUntilClosed reads c until the proxy closes it or limit passes, and
// returns how long that took, what was read and the final error (nil for a
// clean EOF).
func readUntilClosed(c net.Conn, limit time.Duration) (time.Duration, []byte, error) {
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(c)
	return time.Since(start), b, err
}

// closedByPeer reports whether err ends a read because the other side
// closed (EOF or reset), not because our own deadline passed.
func closedByPeer(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestFaults drives one proxy through every fault of issue 7 with a
// misbehaving in-process peer, while a well-behaved legacy app keeps
// working beside them; after each fault one more good request must succeed.
func TestFaults(t *testing.T) {
	good := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	hangAddr := hangingServer(t)
	resetAddr, resetCA := resettingServer(t, 4096, false)
	resetCloseAddr, resetCloseCA := resettingServer(t, 4096, true)
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := closedLn.Addr().String()
	closedLn.Close()

	// selfDials counts the proxy's upstream dials to its own address.
	var (
		selfAddr  atomic.Pointer[string]
		selfDials atomic.Int64
	)
	p := startProxy(t, caFiles(good.caFile, resetCA, resetCloseCA)+
		pinRule("good.test", "bump", good.addr, originName)+
		pinRule("refused.test", "bump", refusedAddr)+
		pinRule("hang.test", "bump", hangAddr)+
		pinRule("reset.test", "bump", resetAddr, originName)+
		pinRule("reset-close.test", "bump", resetCloseAddr, originName)+
		pinRule("wrongname.test", "bump", good.addr)+
		pinRule("tunnel.nxdomain.invalid", "tunnel", "")+
		pinRule("*.invalid", "bump", ""), func(c *Config) {
		c.Policy.Limits.HandshakeTimeout = faultHandshakeTimeout
		c.Policy.Limits.UpstreamTimeout = faultDialTimeout
		c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if self := selfAddr.Load(); self != nil && addr == *self {
				selfDials.Add(1)
			}
			return loopbackDial(ctx, network, addr)
		}
	})
	selfAddr.Store(&p.addr)
	stopGood := goodLoop(t, p, "https://good.test/")
	defer func() {
		n, errs := stopGood()
		t.Logf("good app beside the faults: %d requests succeeded, %d failed", n, len(errs))
		for _, err := range errs {
			t.Errorf("good app failed during the faults: %v", err)
		}
		if n == 0 {
			t.Errorf("good app made no successful request during the faults")
		}
	}()
	stillServes := func(t *testing.T) {
		t.Helper()
		resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://good.test/")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("after the fault: good request got %d %q, want 200", resp.StatusCode, body)
		}
	}
	client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})

	// Upstream failures: answered inside the app's TLS connection, with a
	// body naming the cause, in bounded time.
	for _, tt := range []struct {
		name   string
		host   string
		status int
		want   []string
		min    time.Duration // the answer may not come before this
	}{
		{"upstream-refuses", "refused.test", http.StatusBadGateway, []string{"could not connect", refusedAddr}, 0},
		{"upstream-hangs-in-handshake", "hang.test", http.StatusGatewayTimeout, []string{hangAddr, "did not complete the TLS handshake in time"}, faultDialTimeout},
		{"upstream-wrong-name", "wrongname.test", http.StatusBadGateway, []string{"wrongname.test", "origin.test", "server_name"}, 0},
		{"dns-failure", "nxdomain.invalid", http.StatusBadGateway, []string{`"nxdomain.invalid"`, "could not resolve"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, body := get(t, client, "https://"+tt.host+"/")
			took := time.Since(start)
			if resp.StatusCode != tt.status {
				t.Errorf("GET https://%s/: status = %d, want %d; body:\n%s", tt.host, resp.StatusCode, tt.status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET https://%s/: body does not name %q:\n%s", tt.host, w, body)
				}
			}
			if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS10 {
				t.Errorf("GET https://%s/: answer not inside the app's TLS 1.0 connection", tt.host)
			}
			if took < tt.min || took > tt.min+3*time.Second {
				t.Errorf("GET https://%s/ took %v, want %v to %v", tt.host, took, tt.min, tt.min+3*time.Second)
			}
			stillServes(t)
		})
	}

	t.Run("dns-failure-tunnel", func(t *testing.T) {
		_, err := p.connect("tunnel.nxdomain.invalid:443")
		var ce *connectError
		if !errors.As(err, &ce) || ce.status != http.StatusBadGateway {
			t.Fatalf("CONNECT tunnel.nxdomain.invalid:443: err = %v, want 502", err)
		}
		if !strings.Contains(ce.body, `"tunnel.nxdomain.invalid"`) {
			t.Errorf("CONNECT 502 body does not name the host:\n%s", ce.body)
		}
		stillServes(t)
	})

	t.Run("upstream-resets-mid-body", func(t *testing.T) {
		resp, err := client.Get("https://reset.test/")
		if err != nil {
			t.Fatalf("GET https://reset.test/: %v", err)
		}
		done := make(chan struct{})
		var n int64
		go func() {
			defer close(done)
			n, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			resp.Body.Close()
			<-done
			t.Fatalf("the app's read hung after the upstream reset (got %d bytes)", n)
		}
		if err == nil || n >= 1<<20 {
			t.Errorf("app read %d bytes, err %v; want a truncated body and an error", n, err)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("app read error = %v, want an unexpected EOF or a reset", err)
		}
		t.Logf("app read %d of 1048576 body bytes, then: %v", n, err)
		line := waitAccessLine(t, p, "host=reset.test")
		out := logInt(line, "bytes_out")
		if out < 4096 {
			t.Errorf("access line records bytes_out=%d, want at least the 4096 body bytes relayed:\n%s", out, line)
		}
		t.Logf("access line: %s", line)
		stillServes(t)
	})

	t.Run("upstream-resets-close-delimited-body", func(t *testing.T) {
		// Without Content-Length only the way the connection ends tells the
		// app whether it got the whole body: a reset must not reach it as a
		// clean TLS close_notify.
		resp, err := client.Get("https://reset-close.test/")
		if err != nil {
			t.Fatalf("GET https://reset-close.test/: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("app got %d, read %d bytes, then: %v", resp.StatusCode, len(b), err)
		stillServes(t)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want the origin's 200 (body %q)", resp.StatusCode, firstLine(b))
		}
		if err == nil {
			t.Errorf("the app read a truncated close-delimited body (%d bytes) as complete: an upstream reset must reach it as a reset, not a close_notify", len(b))
		}
	})

	t.Run("access-line-names-reset", func(t *testing.T) {
		line := waitAccessLine(t, p, "host=reset.test")
		if !strings.Contains(line, "error=") || !strings.Contains(line, "closed_by=upstream") {
			t.Errorf("the access line of a relay the upstream reset does not say so (want error= and closed_by=upstream): %s", line)
		}
	})

	t.Run("app-stalls-mid-handshake", func(t *testing.T) {
		half := captureClientHello(t, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, ServerName: "good.test"}) //nolint:gosec // the test plays a legacy app
		half = half[:len(half)/2]
		for _, via := range []string{"after-connect", "proxy-port"} {
			t.Run(via, func(t *testing.T) {
				var c net.Conn
				var err error
				if via == "after-connect" {
					c, err = p.connect("good.test:443")
				} else {
					c, err = net.Dial("tcp", p.addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write(half); err != nil {
					t.Fatal(err)
				}
				took, _, err := readUntilClosed(c, 10*time.Second)
				if !closedByPeer(err) {
					t.Fatalf("half a ClientHello: connection still open after %v (%v), want closed after the %v handshake timeout", took, err, faultHandshakeTimeout)
				}
				if took < faultHandshakeTimeout*8/10 || took > faultHandshakeTimeout+2*time.Second {
					t.Errorf("half a ClientHello: closed after %v, want about the %v handshake timeout", took, faultHandshakeTimeout)
				}
				stillServes(t)
			})
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		hello := captureClientHello(t, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, ServerName: "good.test"}) //nolint:gosec // the test plays a legacy app
		for _, tt := range []struct {
			name       string
			connect    bool   // CONNECT good.test:443 first
			head, drip string // sent at once, then one byte per 100 ms
		}{
			{"header", false, "CONNECT good.test:443 HTTP/1.1\r\n", "Host: good.test\r\nUser-Agent: slowloris\r\nX-a: " + strings.Repeat("b", 200) + "\r\n\r\n"},
			{"request-line", false, "", "CONNECT good.test:443 HTTP/1.1\r\nHost: good.test\r\n\r\n"},
			{"client-hello", true, "", string(hello)},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := p.dialGood(t, tt.connect)
				defer c.Close()
				io.WriteString(c, tt.head)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var dripped atomic.Int64
				wg.Go(func() {
					for i := range len(tt.drip) {
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Millisecond):
						}
						if _, err := io.WriteString(c, tt.drip[i:i+1]); err != nil {
							return
						}
						dripped.Add(1)
					}
				})
				took, got, err := readUntilClosed(c, 10*time.Second)
				close(stop)
				wg.Wait()
				if !closedByPeer(err) {
					t.Fatalf("slowloris %s: still open after %v (%d bytes dripped, %v)", tt.name, took, dripped.Load(), err)
				}
				if took > faultHandshakeTimeout+2*time.Second {
					t.Errorf("slowloris %s: closed after %v, want about the %v timeout", tt.name, took, faultHandshakeTimeout)
				}
				if strings.Contains(string(got), " 200 ") {
					t.Errorf("slowloris %s: proxy answered %q", tt.name, got)
				}
				t.Logf("slowloris %s: closed after %v, %d bytes dripped, read %q", tt.name, took, dripped.Load(), got)
				stillServes(t)
			})
		}
	})

	t.Run("random-bytes", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			prefix  string
			connect bool
		}{
			{"proxy-port", "", false},
			{"proxy-port-tls-record", "\x16\x03\x01\x40\x00", false},
			{"after-connect", "", true},
		} {
			for seed := range uint64(3) {
				t.Run(fmt.Sprintf("%s/seed%d", tt.name, seed), func(t *testing.T) {
					junk := make([]byte, 64<<10)
					r := rand.New(rand.NewPCG(seed, 7))
					for i := range junk {
						junk[i] = byte(r.Uint32())
					}
					copy(junk, tt.prefix)
					c := p.dialGood(t, tt.connect)
					defer c.Close()
					var wg sync.WaitGroup
					wg.Go(func() { c.Write(junk) })
					took, got, err := readUntilClosed(c, 10*time.Second)
					c.Close()
					wg.Wait()
					if !closedByPeer(err) {
						t.Fatalf("64 KiB of random bytes: still open after %v: %v", took, err)
					}
					if took > faultHandshakeTimeout+2*time.Second {
						t.Errorf("64 KiB of random bytes: closed after %v, want within the %v timeout", took, faultHandshakeTimeout)
					}
					if len(got) > 0 {
						t.Logf("answer: %q", firstLine(got))
					}
				})
			}
		}
		stillServes(t)
	})

	t.Run("malformed-connect", func(t *testing.T) {
		for _, tt := range []struct {
			name, req string
			status    int // 0: closed without an answer
		}{
			{"no-target", "CONNECT\r\n\r\n", 400},
			{"no-version", "CONNECT good.test:443\r\nHost: good.test\r\n\r\n", 400},
			{"no-port", "CONNECT good.test HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"port-zero", "CONNECT good.test:0 HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"port-too-big", "CONNECT good.test:99999 HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"named-port", "CONNECT good.test:https HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"empty-host", "CONNECT :443 HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"unclosed-bracket", "CONNECT [::1:443 HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"colons", "CONNECT :::: HTTP/1.1\r\nHost: x\r\n\r\n", 400},
			{"nul-in-host", "CONNECT goo\x00d.test:443 HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"space-in-host", "CONNECT goo d.test:443 HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
			{"http2-version", "CONNECT good.test:443 HTTP/2.0\r\nHost: good.test\r\n\r\n", 505},
			{"no-host-header", "CONNECT good.test:443 HTTP/1.1\r\n\r\n", 200}, // net/http exempts CONNECT from the Host rule
			// One parser (internal/http1) reads every HTTP/1.1 head, and it
			// ends lines at CRLF only: a bare LF is refused here too.
			{"bare-lf", "CONNECT good.test:443 HTTP/1.1\nHost: good.test\n\n", 400},
			{"huge-header", "CONNECT good.test:443 HTTP/1.1\r\nHost: good.test\r\nX: " + strings.Repeat("a", 128<<10) + "\r\n\r\n", 431},
			{"absolute-url", "CONNECT https://good.test:443/ HTTP/1.1\r\nHost: good.test\r\n\r\n", 400},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var wg sync.WaitGroup
				wg.Go(func() { io.WriteString(c, tt.req) })
				defer wg.Wait()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				status := 0
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				if status != tt.status {
					t.Errorf("%q: status = %d (err %v), want %d", tt.req[:min(len(tt.req), 60)], status, err, tt.status)
				}
				if status == http.StatusOK {
					return // a tunnel: the silent app is closed by the handshake timeout
				}
				took, _, err := readUntilClosed(c, 5*time.Second)
				if !closedByPeer(err) {
					t.Errorf("%q: connection still open after %v: %v", tt.req[:min(len(tt.req), 60)], took, err)
				}
			})
		}
		stillServes(t)
	})

	t.Run("connect-to-self", func(t *testing.T) { testConnectToSelf(t, p, good, &selfDials) })
}

// testConnectToSelf points the proxy at its own address (a rule, or DNS,
// could do this) and checks that nothing amplifies: each app request makes
// at most one connection back into the proxy.
func testConnectToSelf(t *testing.T, p *proxy, good *origin, selfDials *atomic.Int64) {
	_, selfPort, _ := net.SplitHostPort(p.addr)
	old := p.srv.Policy()
	pol, err := policy.Parse([]byte("connect_ports = [443, "+selfPort+"]\n"+caFiles(good.caFile)+
		pinRule("good.test", "bump", good.addr, originName)+
		pinRule("self-bump.test", "bump", p.addr)+
		pinRule("self-tunnel.test", "tunnel", p.addr)), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol)
	defer p.srv.SetPolicy(old)

	for _, tt := range []struct {
		name string
		do   func(t *testing.T) string // returns what the app saw
	}{
		{"connect-ip-tls10", func(t *testing.T) string {
			return tryGet(p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://"+p.addr+"/")
		}},
		{"connect-ip-tls13", func(t *testing.T) string {
			return tryGet(p.legacyClient(t, clientOpts{version: tls.VersionTLS13}), "https://"+p.addr+"/")
		}},
		{"rule-bump-to-self", func(t *testing.T) string {
			return tryGet(p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://self-bump.test/")
		}},
		{"rule-tunnel-to-self-nested-connect", func(t *testing.T) string {
			c, err := p.connect("self-tunnel.test:443")
			if err != nil {
				return err.Error()
			}
			defer c.Close()
			// Inside the tunnel the app reaches the proxy again; one more
			// CONNECT is one more hop, never more than the app asked for.
			fmt.Fprintf(c, "CONNECT self-tunnel.test:443 HTTP/1.1\r\nHost: self-tunnel.test\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("nested CONNECT: %d", resp.StatusCode)
		}},
		{"plain-http-to-self", func(t *testing.T) string {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", p.addr, p.addr)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return fmt.Sprintf("%d %s", resp.StatusCode, firstLine(body))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := selfDials.Load()
			start := time.Now()
			saw := tt.do(t)
			took := time.Since(start)
			time.Sleep(200 * time.Millisecond) // let a loop, if any, spin
			hops := selfDials.Load() - before
			t.Logf("app saw %q after %v; the proxy dialled itself %d times", saw, took, hops)
			if hops > 2 {
				t.Errorf("one request to the proxy's own address made it dial itself %d times: a loop", hops)
			}
			if took > 5*time.Second {
				t.Errorf("a request to the proxy's own address took %v", took)
			}
		})
	}
}

// tryGet returns the status and first body line of a GET, or its error.
func tryGet(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, firstLine(body))
}

var logIntRE = regexp.MustCompile(`(\w+)=(-?\d+)`)

// logInt returns the integer field key of a logrus text line, or -1.
func logInt(line, key string) int64 {
	for _, m := range logIntRE.FindAllStringSubmatch(line, -1) {
		if m[1] == key {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			return n
		}
	}
	return -1
}

// waitAccessLine waits for the proxy's access line containing want.
func waitAccessLine(t testing.TB, p *proxy, want string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(p.logs(), "\n") {
			if strings.Contains(line, want) && isAccessLine(line) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access line with %q after 5 s:\n%s", want, p.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isAccessLine reports a logrus text access line ("access" or "access: why").
func isAccessLine(line string) bool {
	return strings.Contains(line, "msg=access ") || strings.Contains(line, `msg="access`)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// dialGood connects to the proxy port, and with connect through a CONNECT
// tunnel to good.test:443 (so what is written next reaches the bump path).
func (p *proxy) dialGood(t *testing.T, connect bool) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if connect {
		c, err = p.connect("good.test:443")
	} else {
		c, err = net.Dial("tcp", p.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}
