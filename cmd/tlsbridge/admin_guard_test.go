package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/freeport"
)

// The [admin] listener is one of tlsbridge's own ports: through the proxy it
// is refused with 508 like the proxy port itself, even when connect_ports
// lists it (issue 13: GET http://127.0.0.1:3129/debug/pprof/cmdline through
// the proxy was served).
func TestRunAdminRefusedThroughProxy(t *testing.T) {
	admin := freeport.Addr(t)
	_, adminPort, _ := net.SplitHostPort(admin)
	cfg := writeConfig(t, fmt.Sprintf("listen = \"127.0.0.1:0\"\nconnect_ports = [443, %s]\n[admin]\nlisten = %q\n", adminPort, admin))
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
	defer stop()
	proxy := proxyAddr(t, stderr)

	for _, tt := range []struct{ name, request string }{
		{"connect", fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", admin)},
		{"connect-localhost", fmt.Sprintf("CONNECT localhost:%s HTTP/1.1\r\nHost: localhost:%[1]s\r\n\r\n", adminPort)},
		{"get-pprof", fmt.Sprintf("GET http://%s/debug/pprof/cmdline HTTP/1.1\r\nHost: %[1]s\r\n\r\n", admin)},
		{"get-metrics", fmt.Sprintf("GET http://%s/metrics HTTP/1.1\r\nHost: %[1]s\r\n\r\n", admin)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := proxyRequest(t, proxy, tt.request)
			if status != http.StatusLoopDetected {
				t.Errorf("%q through the proxy: status %d, want 508; body %q", strings.SplitN(tt.request, "\r\n", 2)[0], status, body)
			}
		})
	}
}

// proxyRequest sends one raw request to the proxy and returns the status
// and up to 1 KiB of the body.
func proxyRequest(t *testing.T, proxy, request string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, request)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(body)
}
