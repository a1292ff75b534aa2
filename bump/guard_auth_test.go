package bump

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// authTestCost is the bcrypt cost of the test users: about 10 ms a
// comparison here (70 ms under -race), enough to tell a comparison from
// none (0.4 ms) while keeping the tests to a few seconds. Production files
// made with htpasswd -B use 5 (htpasswd's default) to 10 or more.
const authTestCost = 6

// authProxy runs a proxy with [auth] (alice / s3cret at authTestCost) and a
// tunnel rule for origin.test, and an httptest server for its metrics.
func authProxy(t *testing.T) (p *proxy, metricsURL string) {
	t.Helper()
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), authTestCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startProxy(t, pinConfig(o, "origin.test", "tunnel", "")+fmt.Sprintf("\n[auth]\nusers_file = %q\n", users))
	ms := httptest.NewServer(p.srv.MetricsHandler())
	t.Cleanup(ms.Close)
	return p, ms.URL
}

// authClient sends CONNECTs with Basic proxy credentials from a chosen
// loopback address (127.0.0.0/8 is all local on Linux), so a flood and a
// legitimate app can come from different client addresses.
type authClient struct {
	proxy string
	from  string // local IP
	c     net.Conn
	br    *bufio.Reader
}

// connect sends one CONNECT origin.test:443 as user:pass on the client's
// connection (a new one if it has none) and returns the status and the time
// from sending the request (or dialling) to reading the status. A 200
// tunnel is closed afterwards; a 407 leaves the connection for the next
// request, as a flooding client would.
func (a *authClient) connect(user, pass string) (int, time.Duration, error) {
	start := time.Now()
	if a.c == nil {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(a.from)}}
		c, err := d.Dial("tcp", a.proxy)
		if err != nil {
			return 0, 0, err
		}
		a.c, a.br = c, bufio.NewReader(c)
	}
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	a.c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := fmt.Fprintf(a.c, "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: Basic %s\r\n\r\n", cred)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(a.br, nil)
	}
	took := time.Since(start)
	if err != nil {
		a.close()
		return 0, took, err
	}
	if resp.StatusCode == http.StatusOK || resp.Close {
		a.close()
	} else {
		resp.Body.Close() // drains the 407's body for the next request
	}
	return resp.StatusCode, took, nil
}

func (a *authClient) close() {
	if a.c != nil {
		a.c.Close()
		a.c = nil
	}
}

// An unknown user costs a bcrypt comparison like a known user with a wrong
// password, so user names cannot be enumerated by response time (issue 13:
// 0.4 ms against 55 ms). The two kinds of request alternate, each from its
// own address so that neither reaches the failure limit.
func TestAuthUnknownUserTakesBcryptTime(t *testing.T) {
	p, _ := authProxy(t)
	unknown := &authClient{proxy: p.addr, from: "127.0.0.3"}
	wrong := &authClient{proxy: p.addr, from: "127.0.0.4"}
	defer unknown.close()
	defer wrong.close()
	// The first unknown user also makes the dummy hash; not measured.
	if st, _, err := unknown.connect("warmup", "x"); err != nil || st != http.StatusProxyAuthRequired {
		t.Fatalf("warm-up: status %d, %v; want 407", st, err)
	}
	const samples = 7 // plus the warm-up: 8 failures per address, under the limit of 10
	var tu, tw []time.Duration
	for i := range samples {
		for _, c := range []struct {
			a    *authClient
			user string
			took *[]time.Duration
		}{{unknown, fmt.Sprintf("mallory%d", i), &tu}, {wrong, "alice", &tw}} {
			st, d, err := c.a.connect(c.user, fmt.Sprintf("guess%d", i))
			if err != nil || st != http.StatusProxyAuthRequired {
				t.Fatalf("%s: status %d, %v; want 407", c.user, st, err)
			}
			*c.took = append(*c.took, d)
		}
	}
	mu, mw := median(tu), median(tw)
	t.Logf("median 407 time over %d requests: unknown user %v, known user with a wrong password %v (ratio %.2f)", samples, mu, mw, float64(max(mu, mw))/float64(min(mu, mw)))
	if max(mu, mw) > 2*min(mu, mw) {
		t.Errorf("unknown user %v vs wrong password %v: want within 2x of each other (unknown: %v; wrong: %v)", mu, mw, tu, tw)
	}
}

// A flood of wrong passwords from one address (64 goroutines, each on its
// own connection, for 2 s) leaves a legitimate app on another address
// fast: the flood reaches bcrypt authFailLimit times, then gets its 407s at
// once (issue 13: 64 threads pushed a legitimate request from 1 ms to
// 689 ms median). Measured here without -race: p50 3.3-5.3 ms, p99
// 8-37 ms after; p50 167 ms, p99 339 ms before (with 13 legitimate
// requests in 2 s instead of 150-220).
//
// It runs in a child process of the test binary: its 130 flood goroutines
// and thousands of requests then neither compete with other tests of this
// binary nor change the race detector's state for them (in-process, it made
// -race report the Config.ConnState that http1relay_test.go's
// newRecordingOrigin writes after its server started, in every later test
// that uses it).
func TestAuthFloodKeepsLegitimateFast(t *testing.T) {
	if os.Getenv("TLSBRIDGE_TEST_FLOOD_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAuthFloodKeepsLegitimateFast$", "-test.count=1", "-test.v", "-test.timeout=60s")
		cmd.Env = append(os.Environ(), "TLSBRIDGE_TEST_FLOOD_CHILD=1")
		out, err := cmd.CombinedOutput()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "guard_auth_test.go:") {
				t.Log(strings.TrimSpace(l))
			}
		}
		if err != nil {
			t.Fatalf("the flood's child process failed: %v\n%s", err, out)
		}
		return
	}
	p, metricsURL := authProxy(t)
	legit := &authClient{proxy: p.addr, from: "127.0.0.1"}
	if st, _, err := legit.connect("alice", "s3cret"); err != nil || st != http.StatusOK {
		t.Fatalf("alice before the flood: status %d, %v; want 200", st, err)
	}

	const flooders, floodFor = 64, 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	defer cancel()
	var floodReqs, floodOK atomic.Int64
	var wg sync.WaitGroup
	for g := range flooders {
		wg.Go(func() {
			// A guess per goroutine, so the guesses are not coalesced;
			// the request is built once, to keep the flood's own CPU
			// (it shares the 2 cores with the proxy) low.
			f, err := newFlooder(p.addr, "127.0.0.2", "alice", fmt.Sprintf("guess-%d", g))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.c.Close()
			for ctx.Err() == nil {
				st, err := f.send()
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("flood: %v", err)
					}
					return
				}
				floodReqs.Add(1)
				if st == http.StatusOK {
					floodOK.Add(1)
					return
				}
			}
		})
	}

	var lat []time.Duration
	for ctx.Err() == nil {
		st, d, err := legit.connect("alice", "s3cret")
		if err != nil || st != http.StatusOK {
			t.Errorf("alice during the flood: status %d, %v; want 200", st, err)
			break
		}
		lat = append(lat, d)
		time.Sleep(5 * time.Millisecond) // an app's pace, not a second flood
	}
	wg.Wait()

	p99 := percentile(lat, 99)
	t.Logf("legitimate CONNECTs during a %d-goroutine wrong-password flood: %d requests, p50 %v, p99 %v, max %v; flood: %d requests",
		flooders, len(lat), percentile(lat, 50), p99, percentile(lat, 100), floodReqs.Load())
	// The bounds hold for the real binary: without -race the
	// legitimate p99 was 8-37 ms here, against a p50 of 1.5 s before the
	// limit. Under -race the flood's HTTP work is 5-10x dearer and the
	// latency follows the other load on the 2 cores (p99 58-639 ms seen),
	// so only the counts below are checked there; `make unit` runs this
	// test once more without -race for the bounds.
	if !raceEnabled {
		if bound := 50 * time.Millisecond; p99 > bound {
			t.Errorf("legitimate p99 under the flood = %v, want under %v", p99, bound)
		}
		if len(lat) < 20 {
			t.Errorf("only %d legitimate requests in %v, want 20 or more", len(lat), floodFor)
		}
	}
	if n := floodOK.Load(); n != 0 {
		t.Errorf("%d flood requests got 200", n)
	}
	m := scrape(t, metricsURL+"/")
	bad, limited := m[`tlsbridge_auth_failures_total{result="bad"}`], m[`tlsbridge_auth_failures_total{result="limited"}`]
	t.Logf("tlsbridge_auth_failures_total: bad %v, limited %v", bad, limited)
	if bad != authFailLimit || limited < float64(floodReqs.Load())-authFailLimit-flooders {
		t.Errorf("auth failures: bad %v, limited %v of %d flood requests; want bad = %d (the limit) and the rest limited", bad, limited, floodReqs.Load(), authFailLimit)
	}
	if n := strings.Count(p.logs(), "failed checks from 127.0.0.2"); n != 1 {
		t.Errorf("the limit for 127.0.0.2 was logged %d times, want once per interval", n)
	}
}

// flooder sends one prepared CONNECT with wrong credentials over and over on
// one keep-alive connection and reads just the status and the body's length.
type flooder struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func newFlooder(proxy, from, user, pass string) (*flooder, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", proxy)
	if err != nil {
		return nil, err
	}
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return &flooder{c: c, br: bufio.NewReader(c),
		req: fmt.Appendf(nil, "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: Basic %s\r\n\r\n", cred)}, nil
}

func (f *flooder) send() (int, error) {
	f.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := f.c.Write(f.req); err != nil {
		return 0, err
	}
	status, length := 0, 0
	for {
		line, err := f.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		switch {
		case status == 0:
			if len(line) < 12 {
				return 0, fmt.Errorf("bad status line %q", line)
			}
			status, _ = strconv.Atoi(string(line[9:12]))
		case len(line) <= 2: // the empty line
			_, err := f.br.Discard(length)
			return status, err
		case bytes.HasPrefix(bytes.ToLower(line), []byte("content-length:")):
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[len("content-length:"):])))
		}
	}
}

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

// percentile is the nearest-rank percentile of d (0 for none).
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i, 1)-1]
}

// The guard's bookkeeping, on a clock the test moves.
func TestAuthGuard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	yes := func() bool { return true }
	no := func() bool { return false }

	t.Run("digest-is-keyed-per-process", func(t *testing.T) {
		var g1, g2 authGuard
		d1, d2 := g1.digest("alice", "s3cret", []byte("$2y$hash")), g2.digest("alice", "s3cret", []byte("$2y$hash"))
		if d1 == d2 {
			t.Error("two guards give the same digest: the key is not random per guard")
		}
		if d1 != g1.digest("alice", "s3cret", []byte("$2y$hash")) {
			t.Error("one guard gives two digests for the same credentials")
		}
		if d1 == credDigest(sha256.Sum256([]byte("alice\x00s3cret\x00$2y$hash"))) {
			t.Error("the digest is a plain SHA-256 of the credentials")
		}
		if g1.digest("ali", "ce:s3cret", nil) == g1.digest("alice", ":s3cret", nil) {
			t.Error("fields run into each other")
		}
	})

	t.Run("verified-expire-after-ttl", func(t *testing.T) {
		var g authGuard
		d := g.digest("alice", "s3cret", []byte("h"))
		var calls int
		count := func() bool { calls++; return true }
		for _, step := range []struct {
			at        time.Duration
			wantCalls int
		}{{0, 1}, {time.Minute, 1}, {credTTL - time.Second, 1}, {credTTL, 2}, {credTTL + time.Minute, 2}} {
			if res, _ := g.check("127.0.0.1", d, t0.Add(step.at), count); res != authOK {
				t.Fatalf("at +%v: %v, want authOK", step.at, res)
			}
			if calls != step.wantCalls {
				t.Errorf("at +%v: bcrypt ran %d times in all, want %d", step.at, calls, step.wantCalls)
			}
		}
	})

	t.Run("limit-per-address-and-window", func(t *testing.T) {
		var g authGuard
		for i := range authFailLimit {
			if res, _ := g.check("192.0.2.1", g.digest("alice", fmt.Sprint(i), nil), t0, no); res != authBad {
				t.Fatalf("failure %d: %v, want authBad", i+1, res)
			}
		}
		right := g.digest("alice", "s3cret", nil)
		var logs int
		for i := range 3 {
			res, first := g.check("192.0.2.1", right, t0.Add(time.Duration(i)*time.Second), yes)
			if res != authLimited {
				t.Fatalf("past the limit, the right password: %v, want authLimited", res)
			}
			if first {
				logs++
			}
		}
		if logs != 1 {
			t.Errorf("the limit was reported as new %d times in one window, want 1", logs)
		}
		if res, _ := g.check("192.0.2.2", right, t0, yes); res != authOK {
			t.Errorf("another address: %v, want authOK", res)
		}
		if res, first := g.check("192.0.2.1", right, t0.Add(authFailWindow), yes); res != authOK || first {
			t.Errorf("after the window: %v, want authOK", res)
		}
	})

	t.Run("concurrent-checks-share-one-bcrypt", func(t *testing.T) {
		var g authGuard
		d := g.digest("alice", "s3cret", nil)
		var calls atomic.Int64
		release := make(chan struct{})
		slow := func() bool { calls.Add(1); <-release; return true }
		var wg sync.WaitGroup
		results := make(chan authResult, 50)
		for range 50 {
			wg.Go(func() { res, _ := g.check("127.0.0.1", d, t0, slow); results <- res })
		}
		time.Sleep(50 * time.Millisecond) // let them all queue on the first check
		close(release)
		wg.Wait()
		close(results)
		for res := range results {
			if res != authOK {
				t.Errorf("a waiter got %v, want authOK", res)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("50 concurrent checks of one password ran bcrypt %d times, want 1", n)
		}
	})

	t.Run("pending-checks-count-against-the-limit", func(t *testing.T) {
		var g authGuard
		var calls atomic.Int64
		release := make(chan struct{})
		slow := func() bool { calls.Add(1); <-release; return false }
		var wg sync.WaitGroup
		var limited atomic.Int64
		for i := range 64 {
			wg.Go(func() {
				if res, _ := g.check("192.0.2.9", g.digest("alice", fmt.Sprint(i), nil), t0, slow); res == authLimited {
					limited.Add(1)
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		close(release)
		wg.Wait()
		if n := calls.Load(); n != authFailLimit {
			t.Errorf("64 concurrent guesses ran bcrypt %d times, want %d", n, authFailLimit)
		}
		if n := limited.Load(); n != 64-authFailLimit {
			t.Errorf("%d of 64 concurrent guesses limited, want %d", n, 64-authFailLimit)
		}
	})

	t.Run("client-table-is-bounded", func(t *testing.T) {
		var g authGuard
		for i := range authClientsMax + 500 {
			g.check(fmt.Sprintf("10.%d.%d.1", i>>8, i&0xff), g.digest("x", "y", nil), t0, no)
		}
		if n := len(g.clients); n > authClientsMax+1 {
			t.Errorf("%d clients tracked, want at most %d (+1 overflow)", n, authClientsMax)
		}
		// Once their windows end, old addresses make room again.
		g.check("192.0.2.77", g.digest("x", "y", nil), t0.Add(authFailWindow), no)
		if g.clients["192.0.2.77"] == nil || len(g.clients) > authClientsMax {
			t.Errorf("after the windows ended: new address tracked %v, %d clients", g.clients["192.0.2.77"] != nil, len(g.clients))
		}
	})
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"127.0.0.1:5000", "127.0.0.1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"not an address", "not an address"},
	} {
		if got := clientKey(tt.in); got != tt.want {
			t.Errorf("clientKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
