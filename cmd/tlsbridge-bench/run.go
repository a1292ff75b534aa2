package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// options is the parsed command line.
type options struct {
	proxy     string
	target    string
	caFile    string
	version   uint16
	suites    []uint16
	clients   int
	duration  time.Duration
	keepAlive bool
	resume    bool
	hosts     int
	path      string
	pid       int
	idle      int
}

// suiteSets are the cipher suite lists a legacy app may offer.
var suiteSets = map[string][]uint16{
	// What a TLS 1.0 client with OpenSSL 1.0 offers: ECDHE-ECDSA,
	// ECDHE-RSA and RSA key exchange, CBC with SHA-1.
	"legacy": {
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	},
	// An app that only knows RSA key exchange (Java 6, Windows XP).
	"rsa": {tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA},
	// A modern app (for bumped TLS 1.2/1.3 runs).
	"modern": nil,
}

func parseOptions(args []string, out io.Writer) (*options, error) {
	fs := flag.NewFlagSet("tlsbridge-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &options{}
	var version, suites string
	fs.StringVar(&o.proxy, "proxy", "127.0.0.1:3128", "proxy address")
	fs.StringVar(&o.target, "target", "", "CONNECT target host:port (with -hosts N, %d in the host is replaced by 0..N-1)")
	fs.StringVar(&o.caFile, "cacert", "", "PEM file of the CA the app trusts (tlsbridge's CA)")
	fs.StringVar(&version, "tls", "1.0", "TLS version the app pins: 1.0, 1.1, 1.2 or 1.3")
	fs.StringVar(&suites, "suites", "legacy", "cipher suites the app offers: legacy, rsa or modern")
	fs.IntVar(&o.clients, "c", 16, "concurrent clients")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "duration")
	fs.BoolVar(&o.keepAlive, "keepalive", false, "reuse each connection for many requests (else one request per connection)")
	fs.BoolVar(&o.resume, "resume", false, "offer TLS session resumption to the proxy")
	fs.IntVar(&o.hosts, "hosts", 0, "number of distinct host names (cold-host runs)")
	fs.StringVar(&o.path, "path", "/", "request path")
	fs.IntVar(&o.pid, "pid", 0, "proxy PID, to report its CPU time per operation and its memory")
	fs.IntVar(&o.idle, "idle", 0, "instead of a load: open this many connections, one request each, hold them idle and report the proxy's RSS per connection")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.target == "" || o.caFile == "" {
		return nil, errors.New("-target and -cacert are required (e.g. -target origin.test:443 -cacert ca.pem)")
	}
	versions := map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
	var ok bool
	if o.version, ok = versions[version]; !ok {
		return nil, fmt.Errorf("-tls %q: want 1.0, 1.1, 1.2 or 1.3", version)
	}
	if o.suites, ok = suiteSets[suites]; !ok {
		return nil, fmt.Errorf("-suites %q: want legacy, rsa or modern", suites)
	}
	return o, nil
}

// result is what the run measured.
type result struct {
	ops       atomic.Int64
	errs      atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
	firstErr  error
}

func (r *result) record(d time.Duration, err error) {
	if err != nil {
		r.errs.Add(1)
		r.mu.Lock()
		if r.firstErr == nil {
			r.firstErr = err
		}
		r.mu.Unlock()
		return
	}
	r.ops.Add(1)
	r.mu.Lock()
	r.latencies = append(r.latencies, d)
	r.mu.Unlock()
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseOptions(args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return fmt.Errorf("read -cacert: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("-cacert %s: no PEM certificate in it", o.caFile)
	}
	base := &tls.Config{
		RootCAs:      roots,
		MinVersion:   o.version, //nolint:gosec // this tool plays a legacy app
		MaxVersion:   o.version,
		CipherSuites: o.suites,
	}
	if o.resume {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
	}

	if o.idle > 0 {
		return holdIdle(ctx, o, base, stdout)
	}
	cpu0, _ := procCPU(o.pid)
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	res := &result{}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Go(func() { client(ctx, o, base, i, res) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, cpuErr := procCPU(o.pid)

	ops := res.ops.Load()
	slices.Sort(res.latencies)
	unit := "conn"
	if o.keepAlive {
		unit = "req"
	}
	fmt.Fprintf(stdout, "mode        %s, TLS %s, suites %d, %d clients, %v\n", map[bool]string{true: "keep-alive", false: "new connection per request"}[o.keepAlive],
		tlsName(o.version), len(o.suites), o.clients, o.duration)
	fmt.Fprintf(stdout, "throughput  %.0f %s/s (%d ok, %d errors)\n", float64(ops)/elapsed.Seconds(), unit, ops, res.errs.Load())
	fmt.Fprintf(stdout, "latency     p50 %v  p99 %v\n", percentile(res.latencies, 50), percentile(res.latencies, 99))
	if o.pid != 0 && cpuErr == nil && ops > 0 {
		cpu := cpu1 - cpu0
		fmt.Fprintf(stdout, "proxy CPU   %v total, %.1f µs/%s\n", cpu, float64(cpu.Microseconds())/float64(ops), unit)
	}
	if res.firstErr != nil {
		fmt.Fprintf(stdout, "first error %v\n", res.firstErr)
	}
	if res.errs.Load() > 0 {
		return fmt.Errorf("%d errors", res.errs.Load())
	}
	return nil
}

// client runs one simulated app until ctx ends.
func client(ctx context.Context, o *options, base *tls.Config, id int, res *result) {
	n := id
	for ctx.Err() == nil {
		target := o.target
		if o.hosts > 0 {
			target = strings.Replace(o.target, "%d", strconv.Itoa(n%o.hosts), 1)
			n += o.clients
		}
		t0 := time.Now()
		conn, br, err := dial(ctx, o, base, target)
		if err != nil {
			if ctx.Err() == nil {
				res.record(0, err)
			}
			continue
		}
		for {
			err := get(conn, br, target, o.path)
			if ctx.Err() != nil {
				break
			}
			res.record(time.Since(t0), err)
			if err != nil || !o.keepAlive {
				break
			}
			t0 = time.Now()
		}
		conn.Close()
	}
}

// dial does CONNECT and the app's TLS handshake with full verification.
func dial(ctx context.Context, o *options, base *tls.Config, target string) (*tls.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", o.proxy)
	if err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		raw.Close()
		return nil, nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	host, _, _ := net.SplitHostPort(target)
	cfg := base.Clone()
	cfg.ServerName = host
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS handshake with %s: %w", target, err)
	}
	raw.SetDeadline(time.Time{})
	return tc, bufio.NewReader(tc), nil
}

// get sends one GET and reads the whole response.
func get(c *tls.Conn, br *bufio.Reader, target, path string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	host, _, _ := net.SplitHostPort(target)
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsbridge-bench\r\n\r\n", path, host); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return err
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}

func tlsName(v uint16) string {
	return map[uint16]string{tls.VersionTLS10: "1.0", tls.VersionTLS11: "1.1", tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[v]
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat
// (fields 14 and 15, in clock ticks of 100 Hz on Linux).
func procCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields start after ") ".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	const tick = 10 * time.Millisecond // USER_HZ = 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

// holdIdle opens o.idle connections, makes one request on each, then
// measures the proxy's resident memory per idle connection.
func holdIdle(ctx context.Context, o *options, base *tls.Config, stdout io.Writer) error {
	if o.pid == 0 {
		return errors.New("-idle needs -pid (the proxy's PID) to read its memory")
	}
	rss0, err := procRSS(o.pid)
	if err != nil {
		return err
	}
	conns := make([]*tls.Conn, 0, o.idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range o.idle {
		target := o.target
		if o.hosts > 0 {
			target = strings.Replace(o.target, "%d", strconv.Itoa(i%o.hosts), 1)
		}
		c, br, err := dial(ctx, o, base, target)
		if err != nil {
			return fmt.Errorf("idle connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if err := get(c, br, target, o.path); err != nil {
			return fmt.Errorf("idle connection %d: %w", i, err)
		}
	}
	time.Sleep(2 * time.Second) // let the proxy settle (GC, returned buffers)
	rss1, err := procRSS(o.pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "idle        %d bumped connections held; proxy RSS %d KiB -> %d KiB: %.1f KiB per connection\n",
		o.idle, rss0>>10, rss1>>10, float64(rss1-rss0)/1024/float64(o.idle))
	return nil
}

// procRSS returns a process's resident set size from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %w", pid, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
