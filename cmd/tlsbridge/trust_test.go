package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/freeport"
)

// selfSigned returns a PEM certificate for key, a CA if isCA, valid for
// validity from now, after tweak changed its template.
func selfSigned(t *testing.T, key crypto.Signer, isCA bool, validity time.Duration, tweak ...func(*x509.Certificate)) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "team internal CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	for _, f := range tweak {
		f(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCAImport(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k crypto.Signer) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})

	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr string // "" for success
	}{
		{"rsa/pkcs1", selfSigned(t, rsaKey, true, 24*time.Hour), pkcs1, ""},
		{"rsa/pkcs8", selfSigned(t, rsaKey, true, 24*time.Hour), pkcs8(rsaKey), ""},
		{"ecdsa/sec1", selfSigned(t, ecKey, true, 24*time.Hour), sec1(ecKey), ""},
		{"ecdsa/pkcs8", selfSigned(t, ecKey, true, 24*time.Hour), pkcs8(ecKey), ""},
		{"not-a-ca", selfSigned(t, ecKey, false, 24*time.Hour), pkcs8(ecKey), "not a CA"},
		{"key-mismatch", selfSigned(t, ecKey, true, 24*time.Hour), pkcs8(otherKey), "does not match"},
		{"key-is-a-cert", selfSigned(t, ecKey, true, 24*time.Hour), selfSigned(t, ecKey, true, time.Hour), "PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, caDir := t.TempDir(), filepath.Join(t.TempDir(), "ca")
			certPath, keyPath := writeFile(t, in, "cert.pem", tt.cert), writeFile(t, in, "key.pem", tt.key)
			out, _, err := runCmd(t, context.Background(), "ca", "import", "-ca-dir", caDir, certPath, keyPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ca import = %v, want an error containing %q", err, tt.wantErr)
				}
				if _, serr := os.Stat(filepath.Join(caDir, "ca.pem")); serr == nil {
					t.Errorf("a rejected import wrote ca.pem")
				}
				return
			}
			if err != nil {
				t.Fatalf("ca import: %v", err)
			}
			if !strings.Contains(out, "next: tlsbridge ca install") {
				t.Errorf("output %q does not say what to run next", out)
			}
			a, err := ca.Load(caDir)
			if err != nil {
				t.Fatalf("imported CA does not load: %v", err)
			}
			if a.Cert.Subject.CommonName != "team internal CA" {
				t.Errorf("loaded CA %q, want the imported one", a.Cert.Subject.CommonName)
			}
			if fi, err := os.Stat(a.KeyPath()); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("ca-key.pem: %v, mode %v, want 0600", err, fi.Mode().Perm())
			}
		})
	}

	t.Run("existing-needs-force", func(t *testing.T) {
		in, caDir := t.TempDir(), t.TempDir()
		if _, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir, "-key", "ecdsa"); err != nil {
			t.Fatal(err)
		}
		certPath := writeFile(t, in, "cert.pem", selfSigned(t, ecKey, true, 24*time.Hour))
		keyPath := writeFile(t, in, "key.pem", pkcs8(ecKey))
		_, _, err := runCmd(t, context.Background(), "ca", "import", "-ca-dir", caDir, certPath, keyPath)
		if err == nil || !strings.Contains(err.Error(), "ca import -force") {
			t.Fatalf("import over an existing CA = %v, want a refusal naming -force", err)
		}
		out, _, err := runCmd(t, context.Background(), "ca", "import", "-ca-dir", caDir, "-force", certPath, keyPath)
		if err != nil {
			t.Fatalf("import -force: %v", err)
		}
		if n := strings.Count(out, "kept the previous CA file as "); n != 2 {
			t.Errorf("import -force output %q: want two backup lines", out)
		}
	})

	t.Run("arguments", func(t *testing.T) {
		if _, _, err := runCmd(t, context.Background(), "ca", "import", "-ca-dir", t.TempDir(), "only-one.pem"); err == nil {
			t.Errorf("ca import with one argument succeeded")
		}
	})
}

func TestCAInitForceKeepsBackup(t *testing.T) {
	caDir := t.TempDir()
	if _, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir, "-key", "ecdsa"); err != nil {
		t.Fatal(err)
	}
	oldPEM, err := os.ReadFile(filepath.Join(caDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir, "-key", "ecdsa", "-force")
	if err != nil {
		t.Fatalf("ca init -force: %v", err)
	}
	backups, _ := filepath.Glob(filepath.Join(caDir, "ca.pem.*.bak"))
	keyBackups, _ := filepath.Glob(filepath.Join(caDir, "ca-key.pem.*.bak"))
	if len(backups) != 1 || len(keyBackups) != 1 {
		t.Fatalf("backups %v %v, want one of each", backups, keyBackups)
	}
	if !strings.Contains(out, backups[0]) || !strings.Contains(out, keyBackups[0]) {
		t.Errorf("ca init -force output %q does not name the backups", out)
	}
	got, err := os.ReadFile(backups[0])
	if err != nil || !bytes.Equal(got, oldPEM) {
		t.Errorf("backup is not the previous ca.pem (%v)", err)
	}
	if fi, err := os.Stat(keyBackups[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key backup mode: %v %v, want 0600", fi.Mode().Perm(), err)
	}
}

func TestCAInfo(t *testing.T) {
	caDir := t.TempDir()
	cfg := writeConfig(t, "[ca]\npermitted_hosts = [\"example.com\"]\n")
	if _, _, err := runCmd(t, context.Background(), "ca", "init", "-config", cfg, "-ca-dir", caDir, "-key", "ecdsa"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, context.Background(), "ca", "info", "-ca-dir", caDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"key type     ECDSA P-256", "permitted    example.com, localhost, 127.0.0.0/8, ::1/128",
		"path length  0\nleaf signing ECDSA leaves are signed by the ECDSA CA itself", "trusted in   system", "nss", "java"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca info output lacks %q:\n%s", want, out)
		}
	}
}

// TestCAInfoLeafSigning: ca info tells whether ECDSA leaves get the fast
// path, and for a CA that forbids it, how to get one that allows it.
func TestCAInfoLeafSigning(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, tt := range []struct {
		name    string
		pathLen int // imported with this path length; -2: made by ca init
		want    []string
	}{
		{"ca-init", -2, []string{"path length  1\n", "signed by an in-memory ECDSA P-256 intermediate"}},
		{"imported/path-len-0", 0, []string{"path length  0\n", "costs an RSA signature (~1 ms)", "tlsbridge ca init -force` (then re-install the CA)"}},
		{"imported/no-path-len", -1, []string{"path length  unlimited\n", "signed by an in-memory ECDSA P-256 intermediate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			caDir := filepath.Join(t.TempDir(), "ca")
			if tt.pathLen == -2 {
				if _, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir); err != nil {
					t.Fatal(err)
				}
			} else {
				in := t.TempDir()
				certPath := writeFile(t, in, "cert.pem", selfSignedPathLen(t, rsaKey, tt.pathLen))
				if _, _, err := runCmd(t, context.Background(), "ca", "import", "-ca-dir", caDir, certPath, writeFile(t, in, "key.pem", keyPEM)); err != nil {
					t.Fatal(err)
				}
			}
			out, _, err := runCmd(t, context.Background(), "ca", "info", "-ca-dir", caDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("ca info output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// selfSignedPathLen is a PEM CA certificate for key with the given path
// length (-1: none), like another tool would make.
func selfSignedPathLen(t *testing.T, key crypto.Signer, pathLen int) []byte {
	t.Helper()
	return selfSigned(t, key, true, 24*time.Hour, func(c *x509.Certificate) {
		c.MaxPathLen, c.MaxPathLenZero = pathLen, pathLen == 0
	})
}

func TestCAInstallBadStores(t *testing.T) {
	caDir := t.TempDir()
	if _, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir, "-key", "ecdsa"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"install", "uninstall"} {
		_, _, err := runCmd(t, context.Background(), "ca", cmd, "-ca-dir", caDir, "-stores", "system,windows")
		if err == nil || !strings.Contains(err.Error(), `"windows"`) || !strings.Contains(err.Error(), "system, nss or java") {
			t.Errorf("ca %s -stores system,windows = %v, want an error naming the store and the choices", cmd, err)
		}
	}
}

func TestWarnCAExpiry(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tests := []struct {
		name     string
		validity time.Duration
		want     string // "" for no log line
	}{
		{"far", 365 * 24 * time.Hour, ""},
		{"soon", 10 * 24 * time.Hour, "level=warning"},
		{"expired", -time.Hour, "level=error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ca.Parse(selfSigned(t, key, true, tt.validity), keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			l := logrus.New()
			l.SetOutput(&buf)
			l.SetFormatter(&logrus.TextFormatter{DisableColors: true})
			warnCAExpiry(a, logrus.NewEntry(l))
			got := buf.String()
			if tt.want == "" {
				if got != "" {
					t.Errorf("log = %q, want nothing", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) || !strings.Contains(got, "tlsbridge ca init -force") {
				t.Errorf("log = %q, want %s naming tlsbridge ca init -force", got, tt.want)
			}
		})
	}
}

// TestRunAdminListener runs the proxy with [admin] listen set, fetches
// /ca.pem, /healthz and /readyz, and checks that run returns once it is stopped.
func TestRunAdminListener(t *testing.T) {
	admin := freeport.Addr(t)
	caDir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("listen = \"127.0.0.1:0\"\n[admin]\nlisten = %q\n", admin))
	_, stop := startRun(t, "-config", cfg, "-ca-dir", caDir)
	defer stop()

	get := func(path string) ([]byte, error) {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	var (
		body []byte
		err  error
	)
	deadline := time.Now().Add(15 * time.Second)
	for body, err = get("/ca.pem"); err != nil && time.Now().Before(deadline); body, err = get("/ca.pem") {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("admin /ca.pem: %v", err)
	}
	onDisk, err := os.ReadFile(filepath.Join(caDir, "ca.pem"))
	if err != nil || !bytes.Equal(body, onDisk) {
		t.Errorf("admin /ca.pem differs from %s/ca.pem (%v)", caDir, err)
	}
	if h, err := get("/healthz"); err != nil || string(h) != "ok\n" {
		t.Errorf("admin /healthz = %q, %v, want ok", h, err)
	}
	// The admin port opens before the proxy's READY=1; /readyz turns 200 then.
	var ready []byte
	for ready, err = get("/readyz"); err != nil && time.Now().Before(deadline); ready, err = get("/readyz") {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(ready) != "ready\n" {
		t.Errorf("admin /readyz = %q, %v, want ready", ready, err)
	}
	const series = `tlsbridge_client_hello_max_version_total{version="1.0"} 0`
	if m, err := get("/metrics"); err != nil || !bytes.Contains(m, []byte(series)) || !bytes.Contains(m, []byte("tlsbridge_cert_mint_seconds_count 0")) {
		t.Errorf("admin /metrics lacks %s and the mint histogram (err %v):\n%s", series, err, m)
	}
}

// TestStoreHint: the ca package names no tlsbridge command; the command
// line adds the one that fixes each kind of store problem, with the CA
// directory spelled out (under sudo the default one may be root's).
func TestStoreHint(t *testing.T) {
	dir := "/home/alice/.local/share/tlsbridge"
	tests := []struct {
		verb string
		r    ca.StoreResult
		want string // "" for no hint
	}{
		{"install", ca.StoreResult{Store: ca.StoreSystem, Outcome: ca.Skipped,
			Err: fmt.Errorf("writing /usr/local/share/ca-certificates needs root: %w: %w", ca.ErrNeedsAdmin, ca.ErrStoreUnavailable)},
			asAdmin("tlsbridge ca install -ca-dir " + dir + " -stores system")},
		{"uninstall", ca.StoreResult{Store: ca.StoreJava, Outcome: ca.Failed,
			Err: fmt.Errorf("removed: %w (%w)", ca.ErrStoreFailed, ca.ErrTrustedElsewhere)},
			asAdmin("tlsbridge ca uninstall -ca-dir " + dir + " -stores system,java")},
		{"install", ca.StoreResult{Store: ca.StoreSystem, Outcome: ca.Skipped,
			Err: fmt.Errorf("%w: %w", ca.ErrNoSystemStore, ca.ErrStoreUnavailable)},
			"tlsbridge ca export -ca-dir " + dir + " -out tlsbridge-ca.pem"},
		{"install", ca.StoreResult{Store: ca.StoreNSS, Outcome: ca.Skipped,
			Err: fmt.Errorf("certutil not found: %w (apt-get install libnss3-tools)", ca.ErrStoreUnavailable)}, ""},
		{"install", ca.StoreResult{Store: ca.StoreNSS, Outcome: ca.Installed}, ""},
	}
	for _, tt := range tests {
		got := storeHint(tt.verb, dir, tt.r)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("storeHint(%s, %v) = %q, want %q", tt.verb, tt.r, got, tt.want)
		}
	}
	if got := storeHint("install", "/tmp/my ca", tests[0].r); !strings.Contains(got, `-ca-dir "/tmp/my ca"`) {
		t.Errorf("storeHint with a space in the directory = %q, want it quoted", got)
	}
}
