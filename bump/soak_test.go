package bump

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// Soak sizes: 20 000 connections in three rounds without the race detector;
// under -race (about 5-10x slower, and `make test` runs every package at
// once) a quarter of that, so the test stays well under 90 s. Each round
// also stops at soakRoundBudget, and says so.
const (
	soakTotal       = 20000
	soakRounds      = 3
	soakWorkers     = 16
	soakRoundBudget = 20 * time.Second
	soakRaceDivisor = 4
)

// TestSoak drives many connections through one proxy in rounds — churn (one
// request per bumped connection), keep-alive (several requests per bumped
// connection) and auto-tunnelled TLS 1.3 — and checks that goroutines and
// open file descriptors return to their baseline after each round and that
// the live heap does not grow from round to round.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	total := soakTotal
	if raceEnabled {
		total /= soakRaceDivisor
	}
	perRound := total / soakRounds

	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	warns := &tailWriter{}
	p := startProxy(t, caFiles(o.caFile)+
		pinRule("bump.soak.test", "bump", o.addr, originName)+
		pinRule("auto.soak.test", "auto", o.addr, originName), func(c *Config) {
		// Access lines (Info) would pile up in the test's log buffer and
		// show as heap growth; failures (Warn) are counted instead.
		l := logrus.New()
		l.SetOutput(warns)
		l.SetLevel(logrus.WarnLevel)
		c.Log = logrus.NewEntry(l)
	})

	proxyRoots := x509.NewCertPool()
	proxyRoots.AddCert(p.ca.Cert)
	originRoots := x509.NewCertPool()
	originRoots.AddCert(o.ca.Cert)
	kinds := []soakKind{
		// churn: a legacy app, one request per connection
		{name: "churn-bump-tls10", target: "bump.soak.test:443", requests: 1, weight: 5, tls: &tls.Config{
			MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, RootCAs: proxyRoots, ServerName: "bump.soak.test"}}, //nolint:gosec // the test plays a legacy app
		// keep-alive: a legacy app reusing its connection (and its session)
		{name: "keepalive-bump-tls11", target: "bump.soak.test:443", requests: 5, weight: 3, tls: &tls.Config{
			MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11, RootCAs: proxyRoots, ServerName: "bump.soak.test", //nolint:gosec // the test plays a legacy app
			ClientSessionCache: tls.NewLRUClientSessionCache(64)}},
		// a modern app under auto: tunnelled untouched, end to end
		{name: "auto-tunnel-tls13", target: "auto.soak.test:443", requests: 2, weight: 2, tls: &tls.Config{
			MinVersion: tls.VersionTLS13, RootCAs: originRoots, ServerName: "origin.test"}},
	}
	var schedule []*soakKind
	for i := range kinds {
		for range kinds[i].weight {
			schedule = append(schedule, &kinds[i])
		}
	}
	round := func(n int) soakRound {
		var (
			next  atomic.Int64
			wg    sync.WaitGroup
			r     soakRound
			errMu sync.Mutex
		)
		start := time.Now()
		deadline := start.Add(soakRoundBudget)
		for range soakWorkers {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(n) || time.Now().After(deadline) {
						return
					}
					k := schedule[i%int64(len(schedule))]
					reqs, err := k.run(p)
					atomic.AddInt64(&r.requests, int64(reqs))
					atomic.AddInt64(&r.conns, 1)
					if err != nil {
						errMu.Lock()
						r.errs = append(r.errs, fmt.Errorf("%s #%d: %w", k.name, i, err))
						errMu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		r.took = time.Since(start)
		return r
	}

	// Warm up (leaf certificates, upstream session caches, pools, the
	// runtime's own goroutines), then take the baseline.
	if r := round(200); len(r.errs) > 0 {
		t.Fatalf("warm-up: %d errors, first: %v\nproxy warnings:\n%s", len(r.errs), r.errs[0], warns.String())
	}
	base := settle(t, nil)
	t.Logf("baseline: goroutines %d, fds %d, heap %s", base.goroutines, base.fds, mib(base.heap))

	var after []soakSnapshot
	var all, conns int64
	for i := range soakRounds {
		r := round(perRound)
		all += r.requests
		conns += r.conns
		s := settle(t, &base)
		after = append(after, s)
		t.Logf("round %d: %d connections, %d requests in %v (%.0f conn/s); after: goroutines %d, fds %d, heap %s",
			i+1, r.conns, r.requests, r.took.Round(time.Millisecond), float64(r.conns)/r.took.Seconds(), s.goroutines, s.fds, mib(s.heap))
		if r.conns < int64(perRound) {
			t.Logf("round %d stopped at its %v budget after %d of %d connections", i+1, soakRoundBudget, r.conns, perRound)
		}
		for j, err := range r.errs {
			if j == 5 {
				t.Errorf("... and %d more", len(r.errs)-5)
				break
			}
			t.Errorf("round %d: %v", i+1, err)
		}
	}
	if w := warns.String(); w != "" {
		t.Errorf("the proxy logged warnings during the soak:\n%s", w)
	}
	t.Logf("total: %d connections, %d requests (race detector: %v)", conns, all, raceEnabled)

	// Goroutines and fds: back to the baseline after every round (settle
	// polls for them), with a small slack for runtime and net/http
	// background goroutines.
	for i, s := range after {
		if s.goroutines > base.goroutines+soakSlack {
			t.Errorf("after round %d: %d goroutines, baseline %d: leak?\n%s", i+1, s.goroutines, base.goroutines, goroutineSummary())
		}
		if base.fds >= 0 && s.fds > base.fds+soakSlack {
			t.Errorf("after round %d: %d open fds, baseline %d: leak?", i+1, s.fds, base.fds)
		}
	}
	// Heap: round 3 may not hold more than round 1 beyond noise.
	first, last := after[0].heap, after[len(after)-1].heap
	if limit := first + max(first/5, 2<<20); last > limit {
		t.Errorf("live heap grew from %s after round 1 to %s after round %d (limit %s)", mib(first), mib(last), len(after), mib(limit))
	}
}

// soakSlack is how far goroutines and fds may end above the baseline.
const soakSlack = 4

// soakKind is one kind of app connection in the soak mix.
type soakKind struct {
	name     string
	target   string
	requests int
	weight   int
	tls      *tls.Config
}

// run makes one connection of kind k through p and its requests on it, and
// returns how many requests succeeded.
func (k *soakKind) run(p *proxy) (int, error) {
	raw, err := p.connect(k.target)
	if err != nil {
		return 0, err
	}
	defer raw.Close()
	c := tls.Client(raw, k.tls)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	host, _, _ := strings.Cut(k.target, ":")
	for i := range k.requests {
		closing := ""
		if i == k.requests-1 {
			closing = "Connection: close\r\n"
		}
		if _, err := fmt.Fprintf(c, "GET /soak/%d HTTP/1.1\r\nHost: %s\r\n%s\r\n", i, host, closing); err != nil {
			return i, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return i, fmt.Errorf("request %d: %w", i+1, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return i, fmt.Errorf("request %d body: %w", i+1, err)
		}
		if resp.StatusCode != http.StatusOK {
			return i, fmt.Errorf("request %d: status %d", i+1, resp.StatusCode)
		}
	}
	return k.requests, c.Close()
}

type soakRound struct {
	conns, requests int64
	took            time.Duration
	errs            []error
}

type soakSnapshot struct {
	goroutines int
	fds        int    // -1 where /proc/self/fd does not exist
	heap       uint64 // HeapAlloc after two GCs: live objects
}

// settle waits up to 5 s for goroutines and fds to fall back to base (or,
// with no base, to stop falling), then returns a sample.
func settle(t testing.TB, base *soakSnapshot) soakSnapshot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	prev := soakSample()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		s := soakSample()
		if base != nil && s.goroutines <= base.goroutines+soakSlack/2 && s.fds <= base.fds+soakSlack/2 {
			prev = s
			break
		}
		if base == nil && s.goroutines == prev.goroutines && s.fds == prev.fds {
			prev = s
			break
		}
		prev = s
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	prev.heap = ms.HeapAlloc
	return prev
}

func soakSample() soakSnapshot {
	s := soakSnapshot{goroutines: runtime.NumGoroutine(), fds: -1}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(ents)
	}
	return s
}

// goroutineSummary is the stacks of live goroutines, for a leak report.
func goroutineSummary() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// tailWriter keeps the first lines written to it (the proxy's warnings),
// bounded so a flood of them cannot itself look like a leak.
type tailWriter struct {
	mu    sync.Mutex
	b     strings.Builder
	lines int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines++
	if w.b.Len() < 16<<10 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lines == 0 {
		return ""
	}
	return fmt.Sprintf("%d lines; first:\n%s", w.lines, w.b.String())
}
