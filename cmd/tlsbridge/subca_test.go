package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// writeSubCA writes a sub-CA of root as cert and key files, as openssl
// would leave them, and returns their paths.
func writeSubCA(t *testing.T, root *catest.Root, cn string) (certPath, keyPath string) {
	t.Helper()
	certPEM, keyPEM := root.Intermediate(t, cn)
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "sub.pem"), filepath.Join(dir, "sub-key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// A fleet instance runs on its own sub-CA of the organisation's root:
// ca import -chain takes it, ca info names the root apps trust, ca export
// gives that root, and the proxy's certificates verify for an app that
// trusts only the root. After ca import -force of a new sub-CA and a
// SIGHUP, new connections get the new chain and a connection made before
// still works.
func TestSubCAImportAndRotateOnSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)

	root := catest.NewRoot(t)
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, root.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(t.TempDir(), "ca")
	cert1, key1 := writeSubCA(t, root, "tlsbridge-1 sub-CA")
	ctx := context.Background()
	if out, _, err := runCmd(t, ctx, "ca", "import", "-ca-dir", caDir, "-chain", rootFile, cert1, key1); err != nil || !strings.Contains(out, "apps trust the root \"catest org root\"") {
		t.Fatalf("ca import -chain: %v\n%s", err, out)
	}
	if out, _, err := runCmd(t, ctx, "ca", "info", "-ca-dir", caDir); err != nil || !strings.Contains(out, "tlsbridge-1 sub-CA -> catest org root") || !strings.Contains(out, "root         CN=catest org root") {
		t.Errorf("ca info does not show the chain and the root: %v\n%s", err, out)
	}
	if out, _, err := runCmd(t, ctx, "ca", "export", "-ca-dir", caDir); err != nil || out != string(root.PEM) {
		t.Errorf("ca export = %v\n%s; want the root", err, out)
	}

	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", caDir)
	defer stop()
	proxy := proxyAddr(t, stderr)
	// TLS on the proxy port: its certificate comes from the CA too.
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", proxy, &tls.Config{RootCAs: root.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS to the proxy, trusting only the root: %v", err)
		}
		return c
	}
	issuer := func(c *tls.Conn) string {
		pc := c.ConnectionState().PeerCertificates
		if len(pc) != 2 {
			t.Errorf("served %d certificates, want [leaf, sub-CA] (no root)", len(pc))
		}
		return pc[1].Subject.CommonName
	}
	old := dial()
	defer old.Close()
	if got := issuer(old); got != "tlsbridge-1 sub-CA" {
		t.Errorf("issuer = %q, want tlsbridge-1 sub-CA", got)
	}

	cert2, key2 := writeSubCA(t, root, "tlsbridge-1 sub-CA 2")
	if out, _, err := runCmd(t, ctx, "ca", "import", "-force", "-ca-dir", caDir, "-chain", rootFile, cert2, key2); err != nil {
		t.Fatalf("ca import -force: %v\n%s", err, out)
	}
	sendSIGHUP(t)
	waitFor(t, "the new CA", func() bool { return strings.Contains(stderr.String(), "reload: new CA") })
	nc := dial()
	defer nc.Close()
	if got := issuer(nc); got != "tlsbridge-1 sub-CA 2" {
		t.Errorf("after the reload, issuer = %q, want tlsbridge-1 sub-CA 2", got)
	}
	// The connection made before still carries a request.
	old.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(old, "CONNECT x.test:8443 HTTP/1.1\r\nHost: x.test:8443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(old), nil)
	if err != nil {
		t.Fatalf("the connection from before the rotation: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT on the old connection = %d, want the proxy's 403", resp.StatusCode)
	}

	// A second SIGHUP with nothing changed logs no new CA.
	sendSIGHUP(t)
	waitFor(t, "the second reload", func() bool { return strings.Count(stderr.String(), "config reloaded") == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(stderr.String(), "reload: new CA"); n != 1 {
		t.Errorf("%d \"new CA\" lines after a reload without a change, want 1", n)
	}
}
