//go:build openssl && cgo

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
	"github.com/tlsbridge/tlsbridge/internal/openssl"
)

// TestRunResumeID plays RSA-only apps that resume by session ID against
// an in-process OpenSSL server with a session cache (what
// bin/tlsbridge-openssl runs), through a CONNECT tunnel: the tool and the
// server both see resumptions, and the report counts them.
func TestRunResumeID(t *testing.T) {
	addr, caFile, resumed := sessionIDOrigin(t, 0)
	proxy := tunnel(t, addr)
	for _, mode := range []string{"new-conn", "keep-alive"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"-proxy", proxy, "-target", "app.test:443", "-cacert", caFile, "-json",
				"-c", "2", "-d", "300ms", "-suites", "rsa", "-resume", "id"}
			if mode == "keep-alive" {
				args = append(args, "-keepalive")
			}
			before := resumed.Load()
			var out bytes.Buffer
			if err := run(context.Background(), args, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			var s summary
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatalf("%v in %q", err, out.String())
			}
			if s.Resume != "id" || s.Mode != mode || s.Ops == 0 || s.Handshakes == 0 {
				t.Fatalf("got %+v, want a %s run with -resume id", s, mode)
			}
			if s.Offered != s.Handshakes-2 || s.Resumed != s.Offered {
				t.Errorf("resumed %d of %d offered, %d handshakes; want all but each app's first offered and resumed", s.Resumed, s.Offered, s.Handshakes)
			}
			if got := resumed.Load() - before; got != s.Resumed {
				t.Errorf("server saw %d resumptions, the tool reports %d", got, s.Resumed)
			}
			if s.Version != "TLS 1.0" || !strings.HasPrefix(s.Cipher, "TLS_RSA_") || s.LeafKey != "RSA" {
				t.Errorf("negotiated %s %s %s leaf, want TLS 1.0, an RSA-kex suite, RSA leaf", s.Version, s.Cipher, s.LeafKey)
			}
		})
	}
}

// TestRunResumeIDMisses: against a server without a session cache every
// handshake is full, and the run fails saying so.
func TestRunResumeIDMisses(t *testing.T) {
	addr, caFile, _ := sessionIDOrigin(t, -1)
	proxy := tunnel(t, addr)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-proxy", proxy, "-target", "app.test:443", "-cacert", caFile, "-json",
		"-c", "2", "-d", "200ms", "-suites", "rsa", "-resume", "id"}, &out)
	if err == nil || !strings.Contains(err.Error(), "offered a session resumed") {
		t.Fatalf("run = %v, want the resumed share below %v reported\n%s", err, minResumed, out.String())
	}
}

// sessionIDOrigin serves GET with 1 KiB over OpenSSL's server at TLS 1.0
// (RSA leaf for app.test, session cache of cacheSize, 0 for the default;
// -1 turns resumption off) and counts the resumed handshakes.
func sessionIDOrigin(t *testing.T, cacheSize int) (addr, caFile string, resumed *atomic.Int64) {
	t.Helper()
	a := catest.New(t)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, a.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := catest.NewCache(t, a).Get("app.test", ca.KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	size := max(cacheSize, 0)
	sctx, err := openssl.NewServerCtx(openssl.ServerConfig{CipherSuites: suiteSets["rsa"], SessionCacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	resumed = new(atomic.Int64)
	var n atomic.Int64
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				// Without a cache: a new session context per connection,
				// so no session is ever resumed.
				sessCtx := []byte("app.test")
				if cacheSize < 0 {
					sessCtx = fmt.Appendf(nil, "conn-%d", n.Add(1))
				}
				sc, err := sctx.Server(c, openssl.ConnConfig{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
					Certificate: cert, SessionContext: sessCtx})
				if err != nil {
					t.Error(err)
					c.Close()
					return
				}
				defer sc.Close()
				sc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := sc.Handshake(context.Background()); err != nil {
					return // runs end mid-handshake
				}
				if sc.State().DidResume {
					resumed.Add(1)
				}
				br := bufio.NewReader(sc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					fmt.Fprintf(sc, "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n%s", strings.Repeat("x", 1024))
				}
			})
		}
	})
	return ln.Addr().String(), caFile, resumed
}
