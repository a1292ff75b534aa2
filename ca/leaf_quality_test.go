package ca_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// TestLeafQuality checks a minted leaf field by field against what strict
// clients require (CA/Browser Forum Baseline Requirements §7.1, RFC 5280),
// then lets OpenSSL judge it with -x509_strict.
func TestLeafQuality(t *testing.T) {
	rsaCA := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	ecCA := catest.New(t)
	constrained := catest.NewWithOptions(t, ca.Options{PermittedHosts: []string{"example.com"}})
	tests := []struct {
		name    string
		ca      *ca.Authority
		kt      ca.KeyType
		host    string
		wantSig x509.SignatureAlgorithm
		wantKU  x509.KeyUsage
	}{
		{"rsa-ca/rsa-leaf", rsaCA, ca.KeyRSA2048, "api.example.com", x509.SHA256WithRSA,
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"rsa-ca/ecdsa-leaf", rsaCA, ca.KeyECDSAP256, "api.example.com", x509.SHA256WithRSA, x509.KeyUsageDigitalSignature},
		{"ecdsa-ca/ecdsa-leaf", ecCA, ca.KeyECDSAP256, "api.example.com", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature},
		{"ecdsa-ca/rsa-leaf/ip", ecCA, ca.KeyRSA2048, "192.0.2.10", x509.ECDSAWithSHA256,
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"constrained-ca/permitted", constrained, ca.KeyECDSAP256, "www.example.com", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := catest.NewCache(t, tt.ca)
			cert, err := c.Get(tt.host, tt.kt)
			if err != nil {
				t.Fatal(err)
			}
			// Parse the DER the client gets, not the struct we built.
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if ip := net.ParseIP(tt.host); ip != nil {
				if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(ip) || len(leaf.DNSNames) != 0 {
					t.Errorf("SANs = DNS %v IP %v, want IP %s only", leaf.DNSNames, leaf.IPAddresses, tt.host)
				}
			} else if !slices.Equal(leaf.DNSNames, []string{tt.host}) || len(leaf.IPAddresses) != 0 {
				t.Errorf("SANs = DNS %v IP %v, want DNS %s only", leaf.DNSNames, leaf.IPAddresses, tt.host)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || len(leaf.UnknownExtKeyUsage) != 0 {
				t.Errorf("ExtKeyUsage = %v %v, want serverAuth only", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage)
			}
			if leaf.KeyUsage != tt.wantKU {
				t.Errorf("KeyUsage = %b, want %b", leaf.KeyUsage, tt.wantKU)
			}
			if !leaf.BasicConstraintsValid || leaf.IsCA {
				t.Errorf("basic constraints valid=%v cA=%v, want a valid cA=FALSE", leaf.BasicConstraintsValid, leaf.IsCA)
			}
			if len(leaf.AuthorityKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, tt.ca.Cert.SubjectKeyId) {
				t.Errorf("AuthorityKeyId = %x, want the CA's SubjectKeyId %x", leaf.AuthorityKeyId, tt.ca.Cert.SubjectKeyId)
			}
			// Not required of a leaf by RFC 5280 (a SHOULD), but Go sets it
			// and some stacks index leaves by it; assert it is sane if set.
			if len(leaf.SubjectKeyId) != 0 && bytes.Equal(leaf.SubjectKeyId, leaf.AuthorityKeyId) {
				t.Errorf("SubjectKeyId equals AuthorityKeyId: the leaf claims the CA's key")
			}
			if leaf.SignatureAlgorithm != tt.wantSig {
				t.Errorf("SignatureAlgorithm = %v, want %v", leaf.SignatureAlgorithm, tt.wantSig)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %v: want positive with ≥ 64 random bits", leaf.SerialNumber)
			}
			// Browsers cap leaves at 398 days (Apple, Chrome), falling to
			// 200 in 2026 (CA/B Forum SC-081); stay far below either.
			if v := leaf.NotAfter.Sub(leaf.NotBefore); v > 30*24*time.Hour {
				t.Errorf("validity %v, want well under 200 days (≤ 30 days)", v)
			}
			if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
				t.Errorf("validity %v to %v does not cover now", leaf.NotBefore, leaf.NotAfter)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.host, Roots: tt.ca.Pool()}); err != nil {
				t.Errorf("x509 Verify(%q) = %v", tt.host, err)
			}
			out, err := opensslVerify(t, tt.ca, leaf, "-x509_strict", "-purpose", "sslserver", verifyNameFlag(tt.host), tt.host)
			if err != nil {
				t.Errorf("openssl verify -x509_strict rejects the leaf: %v\n%s", err, out)
			}
		})
	}
}

func verifyNameFlag(host string) string {
	if net.ParseIP(host) != nil {
		return "-verify_ip"
	}
	return "-verify_hostname"
}

// opensslVerify runs `openssl verify -CAfile ca.pem [args] leaf.pem`; it
// skips the test if openssl is not installed.
func opensslVerify(t *testing.T, a *ca.Authority, leaf *x509.Certificate, args ...string) (string, error) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found (apt-get install openssl)")
	}
	leafPath := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(leafPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := append([]string{"verify", "-CAfile", a.CertPath()}, args...)
	cmd = append(cmd, leafPath)
	out, err := exec.Command(openssl, cmd...).CombinedOutput()
	return string(out), err
}

// TestConstraintIsInTheCertificate proves that a constrained CA's limit
// does not depend on tlsbridge's own check: a leaf for a name outside it,
// signed with the CA key directly, is refused by a Go TLS client and by
// openssl verify. A permitted name, signed the same way, is accepted, so
// the refusal is the constraint and nothing else.
func TestConstraintIsInTheCertificate(t *testing.T) {
	a := catest.NewWithOptions(t, ca.Options{PermittedHosts: []string{"example.com", "10.0.0.0/8"}})
	tests := []struct {
		name   string
		permit bool
	}{
		{"api.example.com", true},
		{"evil.com", false},
		{"www.google.com", false},
		{"8.8.8.8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.permit {
				if err := a.Permits(tt.name); !errors.Is(err, ca.ErrNotPermitted) {
					t.Fatalf("Permits(%q) = %v, want ErrNotPermitted", tt.name, err)
				}
			}
			leaf := signBypassingIssue(t, a, tt.name)

			t.Run("go-tls-client", func(t *testing.T) {
				err := handshakeWithLeaf(t, a, leaf, tt.name)
				if tt.permit {
					if err != nil {
						t.Errorf("handshake for %q = %v, want success", tt.name, err)
					}
					return
				}
				var inv x509.CertificateInvalidError
				if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
					t.Errorf("handshake for %q = %v, want CertificateInvalidError CANotAuthorizedForThisName", tt.name, err)
				}
			})

			t.Run("openssl-verify", func(t *testing.T) {
				out, err := opensslVerify(t, a, leaf)
				if tt.permit {
					if err != nil {
						t.Errorf("openssl verify %q = %v\n%s, want OK", tt.name, err, out)
					}
					return
				}
				if err == nil || !strings.Contains(out, "permitted subtree violation") {
					t.Errorf("openssl verify %q = %v\n%s, want \"permitted subtree violation\"", tt.name, err, out)
				}
			})
		})
	}
}

// handshakeWithLeaf serves leaf (whose key is the ECDSA test key) from a
// real TLS server on loopback and connects with a Go client that trusts
// only a and expects name.
func handshakeWithLeaf(t *testing.T, a *ca.Authority, leaf *x509.Certificate, name string) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{leaf.Raw, a.CertDER()},
			PrivateKey:  testKeys()[ca.KeyECDSAP256],
		}},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = tls.Server(c, srvCfg).Handshake() // the client's verdict is what counts
	}()
	defer func() { <-done }()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    a.Pool(),
		ServerName: name,
	})
	if err != nil {
		return err
	}
	return conn.Close()
}
