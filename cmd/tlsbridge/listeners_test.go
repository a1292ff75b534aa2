package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/freeport"
)

func TestRunListenerPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	cfg := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:0"
[[listener]]
listen = "127.0.0.1:0"
upstream = "a.test:443"
[[listener]]
listen = %q
upstream = "b.test:443"
`, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = runCmd(t, ctx, "run", "-config", cfg, "-ca-dir", t.TempDir())
	if err == nil {
		t.Fatal("run with a taken listener port succeeded, want an error")
	}
	for _, want := range []string{"listener[1].listen", addr, "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// A TLS front ([[listener]] with upstream_tls = false) served by "run": a
// TLS 1.0 app reaches a plain line-echo backend with the CA from -ca-dir.
func TestRunServesListener(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer backend.Close()
	wg.Go(func() {
		c, err := backend.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	})

	front := freeport.Addr(t)
	caDir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:0"
[[listener]]
listen = %q
upstream = %q
server_name = "backend.test"
client_tls = true
upstream_tls = false
`, front, backend.Addr().String()))

	_, stop := startRun(t, "-config", cfg, "-ca-dir", caDir)
	defer stop()

	var app *tls.Conn
	waitFor(t, "listener "+front+" to open", func() bool {
		app, err = dialApp(front, caDir)
		return err == nil
	})
	defer app.Close()
	if err := echo(app, "ping\n"); err != nil {
		t.Fatalf("through the listener: %v", err)
	}
	roots, err := caRoots(caDir)
	if err != nil {
		t.Fatal(err)
	}
	// The app takes ECDSA, and run's CA is RSA: its leaf comes signed by
	// the in-memory intermediate, which chains to ca.pem alone.
	cs := app.ConnectionState()
	if leaf := cs.PeerCertificates[0]; leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("leaf key = %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	chain := cs.VerifiedChains[0]
	anchor := x509.NewCertPool()
	anchor.AddCert(chain[len(chain)-1])
	if len(chain) != 3 || !anchor.Equal(roots) {
		t.Errorf("verified chain: %d certificates ending in %q, want leaf, intermediate, ca.pem", len(chain), chain[len(chain)-1].Subject)
	}
}

// caRoots is a pool holding the ca.pem in caDir.
func caRoots(caDir string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(filepath.Join(caDir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return roots, nil
}

// dialApp connects to a client_tls listener at addr as a TLS 1.0 app that
// trusts the CA in caDir and verifies the name backend.test.
func dialApp(addr, caDir string) (*tls.Conn, error) {
	roots, err := caRoots(caDir)
	if err != nil {
		return nil, err
	}
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	app := tls.Client(raw, &tls.Config{
		MinVersion: tls.VersionTLS10, //nolint:gosec // the test plays a legacy app
		MaxVersion: tls.VersionTLS10,
		RootCAs:    roots,
		ServerName: "backend.test",
	})
	app.SetDeadline(time.Now().Add(10 * time.Second))
	return app, nil
}

// echo writes msg to c and wants it back from an echo backend.
func echo(c net.Conn, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}
