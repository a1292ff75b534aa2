package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// writeCAPEM writes a fresh self-signed CA certificate as PEM to dir/name
// and returns the parsed certificate.
func writeCAPEM(tb testing.TB, dir, name string) *x509.Certificate {
	tb.Helper()
	der, _ := selfSigned(tb, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "policy test origin CA " + name},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	})
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	writePEM(tb, filepath.Join(dir, name), "CERTIFICATE", der, 0o644)
	return cert
}

// selfSigned signs tmpl with a fresh P-256 key, valid from an hour ago for
// two hours, and returns the DER and the key.
func selfSigned(tb testing.TB, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der, key
}

// writePEM writes one PEM block to path with mode (past the umask).
func writePEM(tb testing.TB, path, typ string, der []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

// mustParse parses a config that must be valid.
func mustParse(tb testing.TB, config string) *Policy {
	tb.Helper()
	p, err := Parse([]byte(config), "config.toml")
	if err != nil {
		tb.Fatalf("Parse:\n%s\nerror: %v", config, err)
	}
	return p
}

// poolHas reports whether pool holds the self-signed cert: x509.CertPool
// has no Contains method, but such a cert verifies only against a pool
// that holds it.
func poolHas(pool *x509.CertPool, cert *x509.Certificate) bool {
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool})
	return err == nil
}

// lines splits a joined error into its messages.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// hostStrings prints parsed permitted hosts the way the config spells them.
func hostStrings(hosts []ca.PermittedHost) []string {
	var s []string
	for _, h := range hosts {
		s = append(s, h.String())
	}
	return s
}
