package bump

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// echoOrigin is a TLS 1.2+ server that echoes what it reads.
func echoOrigin(t *testing.T) (addr, caFile string) {
	t.Helper()
	oca := catest.New(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{catest.ServerCert(t, oca, "origin.test")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	caFile = oca.CertPath() // catest keeps the CA on disk
	return ln.Addr().String(), caFile
}

// The 1/n-1 split of TLS 1.0 CBC is joined into one message, and a message
// of a single byte (which is not split) still goes through at once.
func TestTLS10SplitRecords(t *testing.T) {
	addr, caFile := echoOrigin(t)
	p := startProxy(t, fmt.Sprintf("[upstream]\nca_files = [%q]\n[[rule]]\nhosts = [\"echo.test\"]\naction = \"bump\"\n[rule.upstream]\naddress = %q\nserver_name = \"origin.test\"\n", caFile, addr))
	raw := p.mustConnect(t, "echo.test:443")
	defer raw.Close()
	c := tls.Client(raw, &tls.Config{
		ServerName: "echo.test", RootCAs: p.ca.Pool(),
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, //nolint:gosec // the test plays a legacy app
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
	})
	for _, msg := range []string{"x", "hello, split records", "y", strings.Repeat("z", 40000)} {
		start := time.Now()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("echo of %d bytes: %v", len(msg), err)
		}
		if string(got) != msg {
			t.Fatalf("echo of %d bytes differs", len(msg))
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("echo of %d bytes took %v", len(msg), d)
		}
	}
	if cs := c.ConnectionState(); cs.Version != tls.VersionTLS10 {
		t.Errorf("app TLS = %x, want TLS 1.0", cs.Version)
	}
}
