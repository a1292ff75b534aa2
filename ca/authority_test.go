package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

func TestCreateFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix file modes do not apply on Windows")
	}
	dir := filepath.Join(t.TempDir(), "nested", "ca")
	if _, err := ca.Create(dir, ca.Options{Key: ca.KeyECDSAP256}, false); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{filepath.Join(dir, ca.KeyFile), 0o600},
		{filepath.Join(dir, ca.CertFile), 0o644},
	} {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode(); got != tt.want {
				t.Errorf("mode of %s = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
	// No temporary files left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Errorf("CA dir has %d entries, want 2 (%v)", len(ents), ents)
	}
}

func TestLoadOrCreateRestart(t *testing.T) {
	dir := t.TempDir()
	first, created, err := ca.LoadOrCreate(dir, ca.Options{Key: ca.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Errorf("first LoadOrCreate: created = false, want true")
	}
	second, created, err := ca.LoadOrCreate(dir, ca.Options{Key: ca.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Errorf("second LoadOrCreate: created = true, want false")
	}
	if got, want := second.Fingerprint(), first.Fingerprint(); got != want {
		t.Errorf("fingerprint after restart = %s, want %s", got, want)
	}
	// The reloaded key signs leaves the original CA's pool accepts.
	leaf, _, err := second.Issue([]string{"example.com"}, catest.ServerCert(t, first).Leaf.PublicKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: first.Pool()}); err != nil {
		t.Errorf("leaf from reloaded CA does not verify against the original: %v", err)
	}
	if got, want := second.Dir, dir; got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	if got, want := second.CertPath(), filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("CertPath() = %q, want %q", got, want)
	}
	if got, want := second.KeyPath(), filepath.Join(dir, "ca-key.pem"); got != want {
		t.Errorf("KeyPath() = %q, want %q", got, want)
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const n = 8
	var wg sync.WaitGroup
	fps := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var a *ca.Authority
			a, created[i], errs[i] = ca.LoadOrCreate(dir, ca.Options{Key: ca.KeyECDSAP256})
			if a != nil {
				fps[i] = a.Fingerprint()
			}
		})
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreate #%d: %v", i, errs[i])
		}
		if created[i] {
			nCreated++
		}
		if fps[i] != fps[0] {
			t.Errorf("LoadOrCreate #%d got CA %s, #0 got %s", i, fps[i], fps[0])
		}
	}
	if nCreated != 1 {
		t.Errorf("%d of %d concurrent LoadOrCreate calls created a CA, want 1", nCreated, n)
	}
	if a, err := ca.Load(dir); err != nil || a.Fingerprint() != fps[0] {
		t.Errorf("Load after concurrent LoadOrCreate = %v; want CA %s", err, fps[0])
	}
}

func TestCreateExisting(t *testing.T) {
	a := catest.New(t)
	if _, err := ca.Create(a.Dir, ca.Options{Key: ca.KeyECDSAP256}, false); !errors.Is(err, ca.ErrCAExists) {
		t.Fatalf("Create without force over an existing CA: err = %v, want ErrCAExists", err)
	}
	b, err := ca.Create(a.Dir, ca.Options{Key: ca.KeyECDSAP256}, true)
	if err != nil {
		t.Fatalf("Create with force: %v", err)
	}
	if b.Fingerprint() == a.Fingerprint() {
		t.Errorf("Create with force kept the old CA")
	}
	loaded, err := ca.Load(a.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loaded.Fingerprint(), b.Fingerprint(); got != want {
		t.Errorf("Load after forced Create: fingerprint %s, want %s", got, want)
	}
}

// writeCA writes cert and key PEM files into a new directory.
func writeCA(t *testing.T, certPEM, keyPEM []byte) string {
	t.Helper()
	dir := t.TempDir()
	if certPEM != nil {
		if err := os.WriteFile(filepath.Join(dir, ca.CertFile), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if keyPEM != nil {
		if err := os.WriteFile(filepath.Join(dir, ca.KeyFile), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadErrors(t *testing.T) {
	a, b := catest.New(t), catest.New(t)
	aCert, aKey := readFile(t, a.CertPath()), readFile(t, a.KeyPath())
	bKey := readFile(t, b.KeyPath())

	// A leaf certificate with its own key is not a CA.
	srv := catest.ServerCert(t, a, "example.com")
	leafKeyDER, err := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	leafCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate[0]})
	leafKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leafKeyDER})

	tests := []struct {
		name      string
		cert, key []byte
		want      error // nil: any error
	}{
		{"missing-both", nil, nil, ca.ErrCANotFound},
		{"missing-key", aCert, nil, ca.ErrCANotFound},
		{"missing-cert", nil, aKey, ca.ErrCANotFound},
		{"mismatched-key", aCert, bKey, ca.ErrKeyMismatch},
		{"not-a-ca", leafCert, leafKey, ca.ErrNotCA},
		{"garbage-cert", []byte("not pem"), aKey, nil},
		{"garbage-key", aCert, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeCA(t, tt.cert, tt.key)
			got, err := ca.Load(dir)
			if err == nil {
				t.Fatalf("Load = %v, nil; want error", got)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Load error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("Load error %q does not name the directory %s", err, dir)
			}
		})
	}
}

func TestLoadOrCreateHalfCA(t *testing.T) {
	a := catest.New(t)
	dir := writeCA(t, nil, readFile(t, a.KeyPath()))
	if _, _, err := ca.LoadOrCreate(dir, ca.Options{Key: ca.KeyECDSAP256}); !errors.Is(err, ca.ErrCANotFound) {
		t.Fatalf("LoadOrCreate with only ca-key.pem: err = %v, want ErrCANotFound", err)
	}
	if got, want := readFile(t, filepath.Join(dir, ca.KeyFile)), readFile(t, a.KeyPath()); !bytes.Equal(got, want) {
		t.Errorf("LoadOrCreate replaced an existing ca-key.pem")
	}
}

func TestParseLegacyKeyFormats(t *testing.T) {
	a := catest.New(t)
	block, _ := pem.Decode(readFile(t, a.KeyPath()))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ca.Parse(a.CertPEM(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	if err != nil {
		t.Fatalf("Parse with a SEC 1 key: %v", err)
	}
	dir := t.TempDir()
	if err := got.Save(dir, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Load(dir); err != nil {
		t.Errorf("Load after Save of an imported CA: %v", err)
	}
}

func TestCACertificate(t *testing.T) {
	for _, tt := range []struct {
		name        string
		key         ca.KeyType
		wantAlg     x509.SignatureAlgorithm
		wantPathLen int // 1: room for the ECDSA leaf intermediate
	}{
		{"default-rsa", 0, x509.SHA256WithRSA, 1},
		{"ecdsa-p256", ca.KeyECDSAP256, x509.ECDSAWithSHA256, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ca.Create(t.TempDir(), ca.Options{Key: tt.key}, false)
			if err != nil {
				t.Fatal(err)
			}
			c := a.Cert
			if !c.IsCA || !c.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v, want true, true", c.IsCA, c.BasicConstraintsValid)
			}
			if c.MaxPathLen != tt.wantPathLen || c.MaxPathLenZero != (tt.wantPathLen == 0) {
				t.Errorf("MaxPathLen = %d, MaxPathLenZero = %v, want %d, %v", c.MaxPathLen, c.MaxPathLenZero, tt.wantPathLen, tt.wantPathLen == 0)
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; c.KeyUsage != want {
				t.Errorf("KeyUsage = %b, want %b", c.KeyUsage, want)
			}
			if len(c.SubjectKeyId) != 20 {
				t.Errorf("len(SubjectKeyId) = %d, want 20", len(c.SubjectKeyId))
			}
			if got := c.SignatureAlgorithm; got != tt.wantAlg {
				t.Errorf("SignatureAlgorithm = %v, want %v", got, tt.wantAlg)
			}
			if got := c.SerialNumber.BitLen(); got < 100 || got > 128 {
				t.Errorf("serial has %d bits, want ~128", got)
			}
			if !strings.HasPrefix(c.Subject.CommonName, "tlsbridge CA ") {
				t.Errorf("CommonName = %q, want prefix %q", c.Subject.CommonName, "tlsbridge CA ")
			}
			if got := c.Subject.Organization; len(got) != 1 || got[0] != "tlsbridge" {
				t.Errorf("Organization = %q, want [tlsbridge]", got)
			}
			now := time.Now()
			if d := now.Sub(c.NotBefore); d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("NotBefore is %v before now, want 1h", d)
			}
			if d := c.NotAfter.Sub(now); d < 9*365*24*time.Hour || d > 11*365*24*time.Hour {
				t.Errorf("NotAfter is %v after now, want ~10 years", d)
			}
			if got, want := a.KeyType(), tt.key; want != 0 && got != want {
				t.Errorf("KeyType() = %v, want %v", got, want)
			}
		})
	}
}

func TestCASubjectsDiffer(t *testing.T) {
	a, b := catest.New(t), catest.New(t)
	if a.Cert.Subject.CommonName == b.Cert.Subject.CommonName {
		t.Errorf("two CAs share the subject %q", a.Cert.Subject.CommonName)
	}
}

func TestExport(t *testing.T) {
	a := catest.New(t)
	if !bytes.Equal(a.CertPEM(), readFile(t, a.CertPath())) {
		t.Errorf("CertPEM differs from ca.pem")
	}
	if bytes.Contains(a.CertPEM(), []byte("PRIVATE")) {
		t.Errorf("CertPEM contains a private key")
	}
	if block, _ := pem.Decode(a.CertPEM()); block == nil || !bytes.Equal(block.Bytes, a.CertDER()) {
		t.Errorf("CertDER is not the certificate in CertPEM")
	}
	fp := a.Fingerprint()
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("Fingerprint() = %q, want 32 colon-separated upper-case hex bytes", fp)
	}
	sum := sha256.Sum256(a.CertDER())
	if got, want := strings.ReplaceAll(fp, ":", ""), strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Errorf("Fingerprint() = %s, want SHA-256 %s", got, want)
	}
}

func TestDir(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name            string
		flag, env, conf string
		xdg             string
		want            string
	}{
		{"flag-wins", "/f", "/e", "/c", "/x", "/f"},
		{"env-over-config", "", "/e", "/c", "/x", "/e"},
		{"config-over-xdg", "", "", "/c", "/x", "/c"},
		{"xdg", "", "", "", "/x", "/x/tlsbridge"},
		{"relative-xdg-ignored", "", "", "", "rel", filepath.Join(home, ".local", "share", "tlsbridge")},
		{"home", "", "", "", "", filepath.Join(home, ".local", "share", "tlsbridge")},
		{"cleaned", "/f/../g/", "", "", "", "/g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("USERPROFILE", home) // os.UserHomeDir on Windows
			t.Setenv(ca.EnvDir, tt.env)
			t.Setenv("XDG_DATA_HOME", tt.xdg)
			got, err := ca.Dir(tt.flag, tt.conf)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.FromSlash(tt.want); got != want {
				t.Errorf("Dir(%q, %q) = %q, want %q", tt.flag, tt.conf, got, want)
			}
		})
	}
}

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in      string
		want    ca.KeyType
		wantErr bool
	}{
		{"ecdsa-p256", ca.KeyECDSAP256, false},
		{"rsa2048", ca.KeyRSA2048, false},
		{"RSA2048", ca.KeyRSA2048, false},
		{"auto", 0, true},
		{"rsa4096", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ca.ParseKeyType(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseKeyType(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ca.ErrUnknownKeyType) {
				t.Errorf("ParseKeyType(%q) error = %v, want ErrUnknownKeyType", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseKeyType(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if err == nil && got.String() != strings.ToLower(tt.in) {
				t.Errorf("ParseKeyType(%q).String() = %q", tt.in, got.String())
			}
		})
	}
	var k ca.KeyType
	if err := k.UnmarshalText([]byte("ecdsa-p256")); err != nil || k != ca.KeyECDSAP256 {
		t.Errorf("UnmarshalText(ecdsa-p256) = %v, %v; want ecdsa-p256, nil", k, err)
	}
	if _, err := ca.KeyType(0).MarshalText(); err == nil {
		t.Errorf("KeyType(0).MarshalText() error = nil, want error")
	}
}
