package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// At debug level the log has tlsbridge's own lines, not goproxy's
// internals such as "on 0th handler: &{3 0x8cc660 <nil>}".
func TestDebugLogHasNoGoproxyInternals(t *testing.T) {
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n[log]\nlevel = \"debug\"\n")
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
	proxy := proxyAddr(t, stderr)
	// A CONNECT (refused: port 8443 is not in connect_ports) and a plain
	// HTTP request (refused: nothing listens on port 1) both pass through
	// goproxy's handlers.
	connectStatus(t, proxy, "x.test:8443")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})}}
	if resp, err := client.Get("http://127.0.0.1:1/"); err == nil {
		resp.Body.Close()
	}
	accessRE := regexp.MustCompile(`msg="?access`)
	waitFor(t, "two access lines", func() bool { return len(accessRE.FindAllString(stderr.String(), -1)) >= 2 })
	stop()
	for line := range strings.SplitSeq(stderr.String(), "\n") {
		if strings.Contains(line, "INFO:") || strings.Contains(line, "handler:") || strings.Contains(line, "Running 1 CONNECT") || strings.Contains(line, "Got request") {
			t.Errorf("debug log has goproxy's internals: %s", line)
		}
	}
}
