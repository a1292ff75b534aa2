package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRun drives the tool in-process against a plain CONNECT tunnel and a
// TLS 1.0 origin whose certificate the "app" verifies, in every mode.
func TestRun(t *testing.T) {
	proxy, caFile := legacyOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bulk" {
			w.Write(make([]byte, 1<<20))
			return
		}
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
	// httptest's certificate is valid for example.com.
	common := []string{"-proxy", proxy, "-target", "example.com:443", "-cacert", caFile,
		"-pid", itoa(os.Getpid()), "-json", "-c", "2", "-d", "300ms"}

	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, s summary)
	}{
		{"new-conn/legacy", nil, func(t *testing.T, s summary) {
			if s.Mode != "new-conn" || s.Ops == 0 || s.P99Ms < s.P50Ms || s.Version != "TLS 1.0" {
				t.Errorf("got %+v, want new-conn ops at TLS 1.0 with p99 >= p50", s)
			}
		}},
		{"new-conn/rsa", []string{"-suites", "rsa"}, func(t *testing.T, s summary) {
			if !strings.HasPrefix(s.Cipher, "TLS_RSA_") {
				t.Errorf("cipher = %q, want an RSA key exchange suite", s.Cipher)
			}
		}},
		{"keep-alive", []string{"-keepalive"}, func(t *testing.T, s summary) {
			if s.Mode != "keep-alive" || s.Ops < 2 {
				t.Errorf("got %+v, want several keep-alive requests", s)
			}
		}},
		{"bulk", []string{"-bulk", "1MiB", "-path", "/bulk"}, func(t *testing.T, s summary) {
			if s.Mode != "bulk" || s.Bytes != 1<<20 || s.MBPerSec <= 0 {
				t.Errorf("got %+v, want 1 MiB downloaded", s)
			}
		}},
		{"idle", []string{"-idle", "5"}, func(t *testing.T, s summary) {
			if s.Mode != "idle" || s.IdleConns != 5 || s.RSSAfterKiB == 0 {
				t.Errorf("got %+v, want 5 idle connections and an RSS", s)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), append(common[:len(common):len(common)], tc.args...), &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			if n := strings.Count(out.String(), "\n"); n != 1 {
				t.Fatalf("-json printed %d lines, want 1:\n%s", n, out.String())
			}
			var s summary
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatalf("-json output: %v\n%s", err, out.String())
			}
			if s.Errors != 0 {
				t.Fatalf("errors = %d (%s), want 0", s.Errors, s.FirstError)
			}
			tc.check(t, s)
		})
	}
}

// TestRunConnectionClose: with -close every request the origin sees carries
// "Connection: close", the tool reads each Content-Length body whole and
// makes one request per connection; without it, none carries the header.
func TestRunConnectionClose(t *testing.T) {
	var mu sync.Mutex
	var reqs, closing, headers int
	// A TLS connection's tls-unique (its first Finished, which covers
	// both randoms) -> requests. Not the source address: with -close the
	// origin closes first, so the tunnel's next connection may reuse the
	// port at once.
	conns := map[string]int{}
	proxy, caFile := legacyOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs++
		conns[string(r.TLS.TLSUnique)]++
		if r.Close {
			closing++
		}
		if strings.EqualFold(r.Header.Get("Connection"), "close") {
			headers++
		}
		mu.Unlock()
		w.Header().Set("Content-Length", "1024")
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
	for _, withClose := range []bool{true, false} {
		mu.Lock()
		reqs, closing, headers = 0, 0, 0
		clear(conns)
		mu.Unlock()
		args := []string{"-proxy", proxy, "-target", "example.com:443", "-cacert", caFile, "-json", "-c", "2", "-d", "300ms"}
		if withClose {
			args = append(args, "-close")
		}
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err != nil {
			t.Fatalf("-close=%v: run: %v\n%s", withClose, err, out.String())
		}
		var s summary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("-close=%v: -json output: %v\n%s", withClose, err, out.String())
		}
		mu.Lock()
		n, c, h, nconns := reqs, closing, headers, len(conns)
		mu.Unlock()
		if s.Errors != 0 || s.Ops == 0 || s.Close != withClose {
			t.Errorf("-close=%v: summary %+v, want ops, no errors, connection_close %v", withClose, s, withClose)
		}
		want := 0
		if withClose {
			want = n
		}
		if n == 0 || c != want || h != want {
			t.Errorf("-close=%v: the origin saw %d requests, %d with r.Close and %d with \"Connection: close\"; want %d of each",
				withClose, n, c, h, want)
		}
		if nconns != n {
			t.Errorf("-close=%v: %d requests on %d connections, want one request per connection", withClose, n, nconns)
		}
	}
}

// TestRunNothingCompleted: a proxy that answers no request within the run
// makes the run fail, not a clean run of 0 requests.
func TestRunNothingCompleted(t *testing.T) {
	proxy, caFile := legacyOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond) // answers only after the run ended
		io.WriteString(w, "late")
	}))
	var out bytes.Buffer
	err := run(context.Background(), []string{"-proxy", proxy, "-target", "example.com:443", "-cacert", caFile,
		"-json", "-c", "1", "-d", "200ms"}, &out)
	if err == nil || !strings.Contains(out.String(), "no request completed") {
		t.Errorf("run = %v, output:\n%s\nwant an error: no request completed", err, out.String())
	}
}

// TestRunVerifies: the app verifies the name, so a certificate for another
// host counts as an error.
func TestRunVerifies(t *testing.T) {
	origin := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(origin.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}
	os.WriteFile(caFile, pem.EncodeToMemory(block), 0o600)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-proxy", tunnel(t, origin.Listener.Addr().String()),
		"-target", "not-example.test:443", "-cacert", caFile, "-tls", "1.2", "-suites", "modern", "-c", "1", "-d", "200ms"}, &out)
	if err == nil || !strings.Contains(out.String(), "certificate") {
		t.Errorf("run = %v, output:\n%s\nwant errors naming the certificate", err, out.String())
	}
}

func TestParseOptions(t *testing.T) {
	base := []string{"-target", "a:443", "-cacert", "ca.pem"}
	good := []struct {
		args  []string
		check func(o *options) bool
	}{
		{[]string{"-pid", "12,34"}, func(o *options) bool { return len(o.pids) == 2 && o.pids[1] == 34 }},
		{[]string{"-bulk", "256MiB"}, func(o *options) bool { return o.bulk == 256<<20 }},
		{[]string{"-close"}, func(o *options) bool { return o.close && !o.keepAlive }},
		{[]string{"-tls", "1.2", "-suites", "modern"}, func(o *options) bool { return o.version == tls.VersionTLS12 && o.suites == nil }},
		{nil, func(o *options) bool { return o.resume == resumeOff }},
		{[]string{"-resume", "ticket"}, func(o *options) bool { return o.resume == resumeTicket }},
		{[]string{"-resume", "id", "-suites", "rsa"}, func(o *options) bool { return o.resume == resumeID }},
	}
	for _, g := range good {
		o, err := parseOptions(append(base, g.args...), io.Discard)
		if err != nil || !g.check(o) {
			t.Errorf("parseOptions(%q) = %+v, %v", g.args, o, err)
		}
	}
	bad := map[string][]string{
		"-tls":         {"-tls", "1.4"},
		"-suites":      {"-suites", "export"},
		"-pid":         {"-pid", "12,x"},
		"-bulk":        {"-bulk", "lots"},
		"separate":     {"-bulk", "1M", "-idle", "3"},
		"-c":           {"-c", "0"},
		"-close":       {"-close", "-keepalive"},
		"-idle":        {"-close", "-idle", "3"},
		"ticket or id": {"-resume", "yes"},
		"TLS 1.3":      {"-resume", "id", "-tls", "1.3"},
		"not -bulk":    {"-resume", "id", "-bulk", "1M"},
	}
	for want, args := range bad {
		if _, err := parseOptions(append(base, args...), io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseOptions(%q) = %v, want an error naming %s", args, err, want)
		}
	}
	if _, err := parseOptions(nil, io.Discard); err == nil {
		t.Error("parseOptions(nil) succeeded, want -target and -cacert required")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30, "2M": 2 << 20} {
		if got, err := parseSize(in); got != want || err != nil {
			t.Errorf("parseSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "MiB", "1.5MiB", "1TB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[int]time.Duration{0: 1 * time.Millisecond, 50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(1..100 ms, %d) = %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(nil, 99) = %v, want 0", got)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as squid's "(squid-1)".
	const line = "4242 ((squid-1) x) S 4241 4241 4241 0 -1 4194560 2000 0 0 0 150 25 3 4 20 0 1 0 100 1000 200"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 4241 || st.cpu != 175*clockTick {
		t.Errorf("parseStat = %+v, want ppid 4241, cpu 1.75s", st)
	}
	if _, err := parseStat("4242 (short) S 1 2"); err == nil {
		t.Error("parseStat(short line) succeeded, want an error")
	}
	before := cpuSnapshot{1: time.Second, 2: time.Second}
	after := cpuSnapshot{1: 3 * time.Second, 3: time.Second} // 2 exited, 3 is new
	if got := cpuSince(before, after); got != 3*time.Second {
		t.Errorf("cpuSince = %v, want 3s (2s of pid 1, 1s of new pid 3)", got)
	}
}

func TestParseRSS(t *testing.T) {
	got, err := parseRSS("Name:\tsquid\nVmPeak:\t  9000 kB\nVmRSS:\t   1234 kB\nThreads:\t1\n")
	if err != nil || got != 1234<<10 {
		t.Errorf("parseRSS = %d, %v, want %d", got, err, 1234<<10)
	}
	if _, err := parseRSS("Name:\tkthreadd\n"); err == nil {
		t.Error("parseRSS without VmRSS succeeded, want an error")
	}
}

// legacyOrigin starts h as a TLS 1.0 origin with the legacy suites (it
// stands in for the proxy's app side) behind a plain CONNECT tunnel; it
// returns the tunnel's address and a PEM file of the certificate, which is
// valid for example.com.
func legacyOrigin(t *testing.T, h http.Handler) (proxy, caFile string) {
	t.Helper()
	origin := httptest.NewUnstartedServer(h)
	origin.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS10, //nolint:gosec // the origin stands in for the proxy's legacy side
		CipherSuites: suiteSets["legacy"],
	}
	origin.Config.ErrorLog = log.New(io.Discard, "", 0) // runs end mid-handshake
	origin.StartTLS()
	t.Cleanup(origin.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return tunnel(t, origin.Listener.Addr().String()), caFile
}

// tunnel starts a minimal CONNECT proxy that relays every tunnel to addr.
func tunnel(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { relay(c, addr) })
		}
	})
	return ln.Addr().String()
}

func relay(c net.Conn, addr string) {
	defer c.Close()
	req, err := http.ReadRequest(bufioReader(c))
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
	io.Copy(c, up)
	c.Close()
	<-done
}

// bufioReader reads byte by byte so that nothing after the CONNECT request
// is buffered away from the relay (the app waits for the 200 anyway).
func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(oneByte{c}, 16) }

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

func itoa(n int) string { return strconv.Itoa(n) }
