package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/freeport"
)

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
	notifyReload(hup)
	defer signal.Stop(hup)

	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
	defer stop()
	proxy := proxyAddr(t, stderr)

	if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "connect_ports") {
		t.Fatalf("before reload: CONNECT x.test:8443 = %q, want 403 for the port", got)
	}

	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\nconnect_ports = [443, 8443]\n[[rule]]\nhosts = [\"x.test\"]\naction = \"deny\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sendSIGHUP(t)
	waitFor(t, "the reload", func() bool { return strings.Contains(stderr.String(), "config reloaded") })
	if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "403") || !strings.Contains(got, "denied by rule[0]") {
		t.Fatalf("after reload: CONNECT x.test:8443 = %q, want 403 from the new deny rule", got)
	}

	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\n[upstream]\nmin_tls = \"1.9\"\nverfy = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sendSIGHUP(t)
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

// SIGHUP re-opens the [[listener]] ports that changed: a new listener
// starts serving, a removed one stops accepting, and one whose settings did
// not change keeps its port and its open connections.
func TestReloadReopensListeners(t *testing.T) {
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)

	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	portA, portB := freeport.Addr(t), freeport.Addr(t)
	listener := func(addr string) string {
		return fmt.Sprintf("[[listener]]\nlisten = %q\nupstream = %q\nserver_name = \"backend.test\"\nclient_tls = true\nupstream_tls = false\n", addr, backend.Addr().String())
	}
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n"+listener(portA))
	caDir := t.TempDir()
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", caDir)
	defer stop()
	waitFor(t, "the proxy to listen", func() bool { return strings.Contains(stderr.String(), "tlsbridge listening") })

	reload := func(text string, n int) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		sendSIGHUP(t)
		waitFor(t, "the reload", func() bool { return strings.Count(stderr.String(), "config reloaded") == n })
	}

	var kept *tls.Conn
	waitFor(t, "listener A to open", func() bool {
		c, err := dialApp(portA, caDir)
		if err == nil {
			kept = c
		}
		return err == nil
	})
	defer kept.Close()
	if err := echo(kept, "before\n"); err != nil {
		t.Fatalf("through listener A: %v", err)
	}

	// A unchanged, B added.
	reload("listen = \"127.0.0.1:0\"\n"+listener(portA)+listener(portB), 1)
	b, err := dialApp(portB, caDir)
	if err != nil {
		t.Fatalf("listener B after the reload: %v", err)
	}
	if err := echo(b, "new\n"); err != nil {
		t.Fatalf("through listener B: %v", err)
	}
	b.Close()
	if err := echo(kept, "still\n"); err != nil {
		t.Errorf("the connection through unchanged listener A broke on reload: %v", err)
	}

	// A removed.
	reload("listen = \"127.0.0.1:0\"\n"+listener(portB), 2)
	if c, err := net.DialTimeout("tcp", portA, time.Second); err == nil {
		c.Close()
		t.Errorf("listener A still accepts after it was removed from the config")
	}
	b, err = dialApp(portB, caDir)
	if err != nil {
		t.Fatalf("listener B (now listener[0]) after the second reload: %v", err)
	}
	defer b.Close()
	if err := echo(b, "again\n"); err != nil {
		t.Errorf("through listener B after the second reload: %v", err)
	}
	if logs := stderr.String(); !strings.Contains(logs, "listener closed: changed or removed by the reload") {
		t.Errorf("no log line says a listener was closed:\n%s", logs)
	}
}

// A reload names, in one warning, every changed key that only a restart
// applies (the proxy and admin ports), and applies the rest: a new
// handshake_timeout, which is not in that warning for CONNECTs.
func TestReloadNamesRestartKeys(t *testing.T) {
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)

	proxy, admin, admin2 := freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	cfg := writeConfig(t, fmt.Sprintf("listen = %q\n[admin]\nlisten = %q\n", proxy, admin))
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
	defer stop()
	waitFor(t, "the proxy to listen", func() bool { return strings.Contains(stderr.String(), "tlsbridge listening") })

	moved := freeport.Addr(t)
	text := fmt.Sprintf("listen = %q\n[admin]\nlisten = %q\n[limits]\nupstream_timeout = \"3s\"\n", moved, admin2)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sendSIGHUP(t)
	waitFor(t, "the reload", func() bool { return strings.Contains(stderr.String(), "config reloaded") })
	var warning string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "only at start") {
			warning = l
		}
	}
	for _, want := range []string{"listen (\\\"" + moved, "admin.listen (\\\"" + admin2, "restart"} {
		if !strings.Contains(warning, want) {
			t.Errorf("restart warning lacks %q:\n%s", want, warning)
		}
	}
	if strings.Contains(warning, "upstream_timeout") {
		t.Errorf("restart warning names upstream_timeout, which a reload applies:\n%s", warning)
	}
	// The proxy still serves on its first port.
	if got := connectStatus(t, proxy, "x.test:8443"); !strings.Contains(got, "connect_ports") {
		t.Errorf("after the reload: CONNECT on the first port = %q, want the proxy's 403", got)
	}
}
