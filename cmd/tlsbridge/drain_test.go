package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/freeport"
)

// getStatus returns the status code of GET url, or 0 if it cannot be
// fetched.
func getStatus(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// On SIGTERM, /readyz fails first: for [admin] drain_delay the proxy port
// still accepts and answers while /readyz answers 503 and /healthz 200;
// then the proxy port closes, and the admin listener stays open until the
// drain is over. Without anything polling /readyz there is nobody to wait
// for, and the ports close at once.
func TestDrainDelayReadyzFailsFirst(t *testing.T) {
	const delay = 1500 * time.Millisecond
	for _, tt := range []struct {
		name    string
		watched bool
	}{
		{"readyz-polled", true},
		{"readyz-never-asked", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy, admin := freeport.Addr(t), freeport.Addr(t)
			cfg := writeConfig(t, fmt.Sprintf("listen = %q\n[admin]\nlisten = %q\ndrain_delay = %q\n", proxy, admin, delay))
			stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
			waitFor(t, "the proxy to listen", func() bool { return strings.Contains(stderr.String(), "tlsbridge listening") })
			healthz, readyz := "http://"+admin+"/healthz", "http://"+admin+"/readyz"
			if tt.watched {
				waitFor(t, "/readyz 200", func() bool { return getStatus(readyz) == http.StatusOK })
			}

			stopped := make(chan struct{})
			start := time.Now()
			go func() { stop(); close(stopped) }()
			if !tt.watched {
				select {
				case <-stopped:
				case <-time.After(delay):
					t.Fatalf("run took more than drain_delay (%v) to stop although nothing asked /readyz", delay)
				}
				return
			}

			waitFor(t, "/readyz 503", func() bool { return getStatus(readyz) == http.StatusServiceUnavailable })
			if got := getStatus(healthz); got != http.StatusOK {
				t.Errorf("during the drain delay: /healthz = %d, want 200", got)
			}
			// Within the delay the proxy answers as before: a balancer
			// that has not seen the 503 yet loses no connection.
			if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "connect_ports") {
				t.Errorf("during the drain delay: CONNECT = %q, want the proxy's 403", got)
			}
			if el := time.Since(start); el > delay-200*time.Millisecond {
				t.Fatalf("the checks above took %v, too close to drain_delay %v to mean anything", el, delay)
			}

			waitFor(t, "the proxy port to close", func() bool {
				c, err := net.DialTimeout("tcp", proxy, time.Second)
				if err != nil {
					return true
				}
				c.Close()
				return false
			})
			if el := time.Since(start); el < delay {
				t.Errorf("the proxy port closed %v after the stop, before drain_delay (%v)", el, delay)
			}
			// The proxy is closed; the admin listener answers until run
			// returns (it may have returned already: nothing was in
			// flight, so the drain was instant).
			select {
			case <-stopped:
			default:
				if got := getStatus(readyz); got != http.StatusServiceUnavailable && got != 0 {
					t.Errorf("after the proxy port closed: /readyz = %d, want 503 (or the admin port closed)", got)
				}
			}
			<-stopped
			if c, err := net.DialTimeout("tcp", admin, time.Second); err == nil {
				c.Close()
				t.Errorf("the admin listener still accepts after run returned")
			}
			if logs := stderr.String(); !strings.Contains(logs, "drain_delay") {
				t.Errorf("no log line names drain_delay:\n%s", logs)
			}
		})
	}
}
