package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is an io.Writer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectStatus sends one CONNECT and returns the status line and body.
func connectStatus(t *testing.T, proxy, target string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&body)
	return resp.Status + " " + body.String()
}

// SIGHUP swaps in a re-read config for new connections; an invalid file
// keeps the policy in force and logs every problem.
func TestReloadOnSIGHUP(t *testing.T) {
	// Keep SIGHUP from ending the test process whatever happens below.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "-config", cfg, "-ca-dir", t.TempDir()}, &syncBuffer{}, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	listenRE := regexp.MustCompile(`msg="tlsbridge listening".* listen="([^"]+)"`)
	var proxy string
	waitFor(t, "the proxy to listen", func() bool {
		m := listenRE.FindStringSubmatch(stderr.String())
		if m != nil {
			proxy = m[1]
		}
		return m != nil
	})
	time.Sleep(100 * time.Millisecond) // let the reload goroutine subscribe

	if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "connect_ports") {
		t.Fatalf("before reload: CONNECT x.test:8443 = %q, want 403 for the port", got)
	}

	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\nconnect_ports = [443, 8443]\n[[rule]]\nhosts = [\"x.test\"]\naction = \"deny\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(stderr.String(), "config reloaded") })
	if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "403") || !strings.Contains(got, "denied by rule[0]") {
		t.Fatalf("after reload: CONNECT x.test:8443 = %q, want 403 from the new deny rule", got)
	}

	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\n[upstream]\nmin_tls = \"1.9\"\nverfy = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the failed reload", func() bool { return strings.Contains(stderr.String(), "reload failed") })
	logs := stderr.String()
	for _, want := range []string{"upstream.min_tls", "verfy", "previous config stays in force"} {
		if !strings.Contains(logs, want) {
			t.Errorf("failed reload log does not mention %q:\n%s", want, logs)
		}
	}
	if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "denied by rule[0]") {
		t.Errorf("after a failed reload: CONNECT x.test:8443 = %q, want the previous policy (deny)", got)
	}
}
