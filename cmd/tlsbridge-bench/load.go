package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// recorder collects the outcome of every operation of a load run.
type recorder struct {
	mu        sync.Mutex
	ops       int64
	errs      int64
	latencies []time.Duration
	firstErr  error
	state     *tls.ConnectionState // of the first successful handshake
	// Handshakes, those where the app had a session of the host to offer
	// (all but its first there), and those that resumed one (-resume).
	handshakes, offered, resumed int64
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

func (r *recorder) handshake(st tls.ConnectionState, offered bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handshakes++
	if offered {
		r.offered++
	}
	if st.DidResume {
		r.resumed++
	}
	if r.state == nil {
		r.state = &st
	}
}

// appConn is the app's TLS connection through the proxy: a *tls.Conn, or
// with -resume id an OpenSSL one.
type appConn interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// appDialer does CONNECT to target and the app's TLS handshake; each
// simulated app has its own (with -resume id it keeps the app's session).
type appDialer func(ctx context.Context, target string) (appConn, *bufio.Reader, tls.ConnectionState, error)

// goDialer is the default app: Go's crypto/tls client, resuming by ticket
// with -resume ticket (base.ClientSessionCache).
func goDialer(o *options, base *tls.Config) appDialer {
	return func(ctx context.Context, target string) (appConn, *bufio.Reader, tls.ConnectionState, error) {
		c, br, err := dial(ctx, o, base, target)
		if err != nil {
			return nil, nil, tls.ConnectionState{}, err
		}
		return c, br, c.ConnectionState(), nil
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
	newDialer := func() appDialer { return goDialer(o, base) }
	if o.resume == resumeID {
		if newDialer, err = sessionIDDialers(o); err != nil {
			return nil, err
		}
	}
	rec := &recorder{}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range o.clients {
		d := newDialer()
		wg.Go(func() { client(ctx, o, d, i, rec) })
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
	if o.resume != resumeOff {
		s.Handshakes, s.Offered, s.Resumed = rec.handshakes, rec.offered, rec.resumed
		if rec.offered > 0 {
			s.ResumedFraction = float64(rec.resumed) / float64(rec.offered)
		}
	}
	if rec.firstErr != nil {
		s.FirstError = rec.firstErr.Error()
	}
	if s.Ops == 0 && s.Errors == 0 {
		// Every request was still waiting when the run ended (a proxy that
		// answers nothing): errors at the end of a run are not counted, so
		// without this the run would look clean.
		s.Errors = 1
		s.FirstError = fmt.Sprintf("no request completed in %v (%d clients): the proxy answered nothing in time", o.duration, o.clients)
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
func client(ctx context.Context, o *options, dial appDialer, id int, rec *recorder) {
	deadline, _ := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) }
	n := id
	seen := map[string]bool{} // hosts this app has a session of (-resume)
	for !over() {
		target := o.target
		if o.hosts > 0 {
			target = hostN(o.target, n%o.hosts)
			n += o.clients
		}
		t0 := time.Now()
		conn, br, st, err := dial(ctx, target)
		if err != nil {
			if !over() {
				rec.record(0, err)
			}
			continue
		}
		rec.handshake(st, seen[target])
		if o.resume != resumeOff {
			seen[target] = true
		}
		for {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := get(conn, br, target, o.path, o.close)
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
	raw, err := connect(ctx, o, target)
	if err != nil {
		return nil, nil, err
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

// connect opens a tunnel to target through the proxy; the connection has
// a 10 s deadline, for the handshake.
func connect(ctx context.Context, o *options, target string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", o.proxy)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		raw.Close()
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	if br.Buffered() > 0 {
		raw.Close()
		return nil, fmt.Errorf("CONNECT %s: %d unexpected bytes after the 200", target, br.Buffered())
	}
	return raw, nil
}

// get sends one GET, reads the whole response and returns the body size.
// With closeConn the request carries "Connection: close", as a one-shot app
// sends it (Python's urllib, PHP streams, Java with http.keepAlive=false);
// the response is still read to its end (its Content-Length, or the
// proxy's close when it has none) before the caller closes.
func get(c io.Writer, br *bufio.Reader, target, path string, closeConn bool) (int64, error) {
	// Host carries the port unless it is https's default (RFC 9110 7.2):
	// a proxy that routes by Host (squid) would otherwise dial port 443.
	host := target
	if h, port, _ := net.SplitHostPort(target); port == "443" {
		host = h
	}
	conn := ""
	if closeConn {
		conn = "Connection: close\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsbridge-bench\r\n%s\r\n", path, host, conn); err != nil {
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
