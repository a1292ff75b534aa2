package bump

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// A reload applies [limits] to new connections: the handshake timeout of
// an app that connects and says nothing follows the policy in force when
// it connected.
func TestReloadLimits(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	config := pinConfig(o, "origin.test", "bump", "")
	p := startProxy(t, config, func(c *Config) { c.Policy.Limits.HandshakeTimeout = 3 * time.Second })

	silentFor := func() time.Duration {
		t.Helper()
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetReadDeadline(start.Add(1500 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		if err == nil {
			t.Fatal("the proxy sent bytes to a silent client")
		}
		return time.Since(start)
	}
	// Before: 3 s, so a silent client is still connected at the 1.5 s bound.
	if took := silentFor(); took < 1400*time.Millisecond {
		t.Fatalf("before the reload: a silent client was closed after %v, want the 3 s handshake_timeout", took)
	}
	pol, err := policy.Parse([]byte(config+"\n[limits]\nhandshake_timeout = \"200ms\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.SetPolicy(pol)
	if took := silentFor(); took < 150*time.Millisecond || took > 1400*time.Millisecond {
		t.Errorf("after the reload: a silent client was closed after %v, want about the new 200 ms handshake_timeout", took)
	}
	if got := p.srv.Policy().Limits.HandshakeTimeout; got != 200*time.Millisecond {
		t.Errorf("Policy().Limits.HandshakeTimeout = %v, want 200ms", got)
	}
}

// Reloads under load: six apps make requests (new connections and
// keep-alive) while the policy is swapped back and forth; none fails.
func TestReloadUnderLoad(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	configs := []string{
		pinConfig(o, "origin.test", "bump", ""),
		pinConfig(o, "origin.test", "bump", "") + "\n[limits]\nhandshake_timeout = \"5s\"\nidle_timeout = \"30s\"\n",
	}
	var pols []*policy.Policy
	for _, c := range configs {
		pol, err := policy.Parse([]byte(c), "")
		if err != nil {
			t.Fatal(err)
		}
		pols = append(pols, pol)
	}
	p := startProxy(t, configs[0])

	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			client := p.legacyClient(t, clientOpts{version: tls.VersionTLS10})
			client.Transport.(*http.Transport).DisableKeepAlives = w%2 == 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("https://origin.test/")
				if err != nil {
					failed.Add(1)
					t.Errorf("worker %d: %v", w, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					t.Errorf("worker %d: status %d", w, resp.StatusCode)
					continue
				}
				ok.Add(1)
			}
		})
	}
	for i := range 40 {
		p.srv.SetPolicy(pols[i%2])
		time.Sleep(25 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests across 40 reloads, %d failed", ok.Load(), failed.Load())
	if ok.Load() < 40 {
		t.Errorf("only %d requests succeeded during the reloads", ok.Load())
	}
}
