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
	"time"
)

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
	var s *summary
	switch {
	case o.idle > 0:
		s, err = holdIdle(ctx, o, base)
	case o.bulk > 0:
		s, err = bulk(ctx, o, base)
	default:
		s, err = load(ctx, o, base)
	}
	if err != nil {
		return err
	}
	if o.json {
		if err := s.writeJSON(stdout); err != nil {
			return err
		}
	} else {
		s.writeText(stdout)
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d errors (first: %s)", s.Errors, s.FirstError)
	}
	return nil
}

// recorder collects the outcome of every operation of a load run.
type recorder struct {
	mu        sync.Mutex
	ops       int64
	errs      int64
	latencies []time.Duration
	firstErr  error
	state     *tls.ConnectionState // of the first successful handshake
}

func (r *recorder) record(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.ops++
	r.latencies = append(r.latencies, d)
}

func (r *recorder) handshake(c *tls.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		st := c.ConnectionState()
		r.state = &st
	}
}

// load runs o.clients simulated apps for o.duration.
func load(ctx context.Context, o *options, base *tls.Config) (*summary, error) {
	cpu0, err := startCPU(o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	rec := &recorder{}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Go(func() { client(ctx, o, base, i, rec) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	s := newSummary(o, "new-conn")
	if o.keepAlive {
		s.Mode = "keep-alive"
	}
	s.Seconds = elapsed.Seconds()
	s.Ops, s.Errors = rec.ops, rec.errs
	s.OpsPerSec = float64(rec.ops) / elapsed.Seconds()
	slices.Sort(rec.latencies)
	s.P50Ms = ms(percentile(rec.latencies, 50))
	s.P99Ms = ms(percentile(rec.latencies, 99))
	s.setState(rec.state)
	if rec.firstErr != nil {
		s.FirstError = rec.firstErr.Error()
	}
	if err := s.setCPU(o, cpu0); err != nil {
		return nil, err
	}
	if s.Ops > 0 && s.CPUSeconds > 0 {
		s.CPUPerOpUs = s.CPUSeconds * 1e6 / float64(s.Ops)
	}
	return s, nil
}

// client runs one simulated app until ctx ends. Errors caused by the end
// of the run are not counted: a dial may see the deadline pass before
// ctx.Err() reports it.
func client(ctx context.Context, o *options, base *tls.Config, id int, rec *recorder) {
	deadline, _ := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) }
	n := id
	for !over() {
		target := o.target
		if o.hosts > 0 {
			target = hostN(o.target, n%o.hosts)
			n += o.clients
		}
		t0 := time.Now()
		conn, br, err := dial(ctx, o, base, target)
		if err != nil {
			if !over() {
				rec.record(0, err)
			}
			continue
		}
		rec.handshake(conn)
		for {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := get(conn, br, target, o.path)
			if over() {
				break
			}
			rec.record(time.Since(t0), err)
			if err != nil || !o.keepAlive {
				break
			}
			t0 = time.Now()
		}
		conn.Close()
	}
}

func hostN(target string, n int) string {
	return strings.Replace(target, "%d", strconv.Itoa(n), 1)
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
	if br.Buffered() > 0 {
		raw.Close()
		return nil, nil, fmt.Errorf("CONNECT %s: %d unexpected bytes after the 200", target, br.Buffered())
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
	return tc, bufio.NewReaderSize(tc, 16<<10), nil
}

// get sends one GET, reads the whole response and returns the body size.
func get(c *tls.Conn, br *bufio.Reader, target, path string) (int64, error) {
	// Host carries the port unless it is https's default (RFC 9110 7.2):
	// a proxy that routes by Host (squid) would otherwise dial port 443.
	host := target
	if h, port, _ := net.SplitHostPort(target); port == "443" {
		host = h
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsbridge-bench\r\n\r\n", path, host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return n, err
}

// bulk downloads o.path (o.bulk bytes) over one connection.
func bulk(ctx context.Context, o *options, base *tls.Config) (*summary, error) {
	target := hostN(o.target, 0)
	conn, br, err := dial(ctx, o, base, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cpu0, err := startCPU(o)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(o.duration + 5*time.Minute))
	t0 := time.Now()
	n, err := get(conn, br, target, o.path)
	elapsed := time.Since(t0)
	if err == nil && n != o.bulk {
		err = fmt.Errorf("GET %s: %d bytes, want %d (-bulk)", o.path, n, o.bulk)
	}
	s := newSummary(o, "bulk")
	s.Clients = 1
	s.Seconds = elapsed.Seconds()
	s.Bytes = n
	if err != nil {
		s.Errors, s.FirstError = 1, err.Error()
	} else {
		s.Ops = 1
		s.OpsPerSec = 1 / elapsed.Seconds()
	}
	s.MBPerSec = float64(n) / 1e6 / elapsed.Seconds()
	s.P50Ms, s.P99Ms = ms(elapsed), ms(elapsed)
	st := conn.ConnectionState()
	s.setState(&st)
	if err := s.setCPU(o, cpu0); err != nil {
		return nil, err
	}
	if n > 0 && s.CPUSeconds > 0 {
		s.CPUSecPerGiB = s.CPUSeconds / (float64(n) / (1 << 30))
	}
	return s, nil
}

// holdIdle opens o.idle connections, makes one request on each, then
// measures the proxy's resident memory per idle connection.
func holdIdle(ctx context.Context, o *options, base *tls.Config) (*summary, error) {
	if len(o.pids) == 0 {
		return nil, errors.New("-idle needs -pid (the proxy's PID) to read its memory")
	}
	rss0, err := treeRSS(o.pids)
	if err != nil {
		return nil, err
	}
	conns := make([]*tls.Conn, 0, o.idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	s := newSummary(o, "idle")
	t0 := time.Now()
	for i := range o.idle {
		target := o.target
		if o.hosts > 0 {
			target = hostN(o.target, i%o.hosts)
		}
		c, br, err := dial(ctx, o, base, target)
		if err == nil {
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = get(c, br, target, o.path)
			c.SetDeadline(time.Time{})
		}
		if err != nil {
			return nil, fmt.Errorf("idle connection %d: %w", i, err)
		}
		if i == 0 {
			st := c.ConnectionState()
			s.setState(&st)
		}
	}
	// Let the proxy settle (GC, returned buffers) before reading its RSS.
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rss1, err := treeRSS(o.pids)
	if err != nil {
		return nil, err
	}
	s.Seconds = time.Since(t0).Seconds()
	s.Ops = int64(o.idle)
	s.IdleConns = o.idle
	s.RSSBeforeKiB, s.RSSAfterKiB = rss0>>10, rss1>>10
	s.RSSPerConnKiB = float64(rss1-rss0) / 1024 / float64(o.idle)
	return s, nil
}

func startCPU(o *options) (cpuSnapshot, error) {
	if len(o.pids) == 0 {
		return nil, nil
	}
	return takeCPU(o.pids)
}

// percentile returns the p-th percentile of sorted latencies (nearest rank
// below).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
