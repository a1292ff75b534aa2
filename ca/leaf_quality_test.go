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
// then lets OpenSSL judge it, and the chain served with it, with
// -x509_strict. ECDSA leaves of an RSA CA come with the in-memory
// intermediate (wantInter), a three-level chain.
func TestLeafQuality(t *testing.T) {
	rsaCA := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	ecCA := catest.New(t)
	constrained := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "example.com")})
	constrainedRSA := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048, PermittedHosts: catest.PermittedHosts(t, "example.com")})
	// The proxy's own certificate is for 127.0.0.1 too, so a name-constrained
	// CA must be able to sign an IP-literal leaf that OpenSSL accepts.
	constrainedIP := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "example.com", "192.0.2.0/24")})
	tests := []struct {
		name      string
		ca        *ca.Authority
		kt        ca.KeyType
		host      string
		wantSig   x509.SignatureAlgorithm
		wantKU    x509.KeyUsage
		wantInter bool
	}{
		{"rsa-ca/rsa-leaf", rsaCA, ca.KeyRSA2048, "api.example.com", x509.SHA256WithRSA,
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, false},
		{"rsa-ca/ecdsa-leaf", rsaCA, ca.KeyECDSAP256, "api.example.com", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature, true},
		{"rsa-ca/ecdsa-leaf/ip", rsaCA, ca.KeyECDSAP256, "192.0.2.10", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature, true},
		{"ecdsa-ca/ecdsa-leaf", ecCA, ca.KeyECDSAP256, "api.example.com", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature, false},
		{"ecdsa-ca/rsa-leaf/ip", ecCA, ca.KeyRSA2048, "192.0.2.10", x509.ECDSAWithSHA256,
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, false},
		{"constrained-ca/permitted", constrained, ca.KeyECDSAP256, "www.example.com", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature, false},
		{"constrained-ca/permitted/ip", constrainedIP, ca.KeyECDSAP256, "192.0.2.10", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature, false},
		{"constrained-rsa-ca/ecdsa-leaf/permitted", constrainedRSA, ca.KeyECDSAP256, "www.example.com", x509.ECDSAWithSHA256, x509.KeyUsageDigitalSignature, true},
		{"constrained-rsa-ca/rsa-leaf/permitted", constrainedRSA, ca.KeyRSA2048, "www.example.com", x509.SHA256WithRSA,
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := catest.NewCache(t, tt.ca)
			cert, err := c.Get(tt.host, tt.kt)
			if err != nil {
				t.Fatal(err)
			}
			// Parse the DER the client gets, not the struct we built.
			if len(cert.Certificate) != 2 {
				t.Fatalf("chain has %d certificates, want 2 (leaf and its issuer)", len(cert.Certificate))
			}
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			issuer, err := x509.ParseCertificate(cert.Certificate[1])
			if err != nil {
				t.Fatal(err)
			}
			var intermediates []*x509.Certificate // what the client gets besides the leaf, minus the CA it has
			if tt.wantInter {
				if issuer.Equal(tt.ca.Cert) || !issuer.Equal(c.Intermediate()) {
					t.Fatalf("second certificate %q, want the intermediate %v", issuer.Subject, c.Intermediate())
				}
				intermediates = append(intermediates, issuer)
			} else if !issuer.Equal(tt.ca.Cert) {
				t.Fatalf("second certificate %q, want the CA %q", issuer.Subject, tt.ca.Cert.Subject)
			}
			if ip := net.ParseIP(tt.host); ip != nil {
				if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(ip) || len(leaf.DNSNames) != 0 {
					t.Errorf("SANs = DNS %v IP %v, want IP %s only", leaf.DNSNames, leaf.IPAddresses, tt.host)
				}
			} else if !slices.Equal(leaf.DNSNames, []string{tt.host}) || len(leaf.IPAddresses) != 0 {
				t.Errorf("SANs = DNS %v IP %v, want DNS %s only", leaf.DNSNames, leaf.IPAddresses, tt.host)
			}
			// The CN carries the host for clients that match it (old Python,
			// embedded stacks), except an IP under DNS name constraints,
			// which OpenSSL would check as a host name and refuse.
			wantCN := tt.host
			if net.ParseIP(tt.host) != nil && len(tt.ca.Cert.PermittedDNSDomains) > 0 {
				wantCN = ""
			}
			if leaf.Subject.CommonName != wantCN {
				t.Errorf("subject CN = %q, want %q", leaf.Subject.CommonName, wantCN)
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
			if len(leaf.AuthorityKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, issuer.SubjectKeyId) {
				t.Errorf("AuthorityKeyId = %x, want the issuer's SubjectKeyId %x", leaf.AuthorityKeyId, issuer.SubjectKeyId)
			}
			if !bytes.Equal(leaf.RawIssuer, issuer.RawSubject) {
				t.Errorf("leaf issuer %q, want the subject of the certificate served with it, %q", leaf.Issuer, issuer.Subject)
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
			inter := x509.NewCertPool()
			for _, c := range intermediates {
				inter.AddCert(c)
			}
			chains, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.host, Roots: tt.ca.Pool(), Intermediates: inter})
			if err != nil {
				t.Errorf("x509 Verify(%q) = %v", tt.host, err)
			} else if got, want := len(chains[0]), 2+len(intermediates); got != want || !chains[0][got-1].Equal(tt.ca.Cert) {
				t.Errorf("x509 Verify(%q): chain of %d ending in %q, want %d ending in the CA", tt.host, got, chains[0][got-1].Subject, want)
			}
			args := []string{"-x509_strict", "-purpose", "sslserver", verifyNameFlag(tt.host), tt.host}
			if len(intermediates) > 0 {
				args = append(args, "-untrusted", writePEM(t, "intermediate.pem", intermediates...))
			}
			out, err := opensslVerify(t, tt.ca, leaf, args...)
			if err != nil {
				t.Errorf("openssl verify -x509_strict rejects the chain: %v\n%s", err, out)
			}
			if len(intermediates) > 0 {
				// The intermediate is not optional: without it the leaf
				// does not chain to the CA, so the pass above used it.
				if out, err := opensslVerify(t, tt.ca, leaf, "-x509_strict"); err == nil {
					t.Errorf("openssl verify without -untrusted accepts the leaf, want \"unable to get local issuer certificate\"\n%s", out)
				}
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
	leafPath := writePEM(t, "leaf.pem", leaf)
	cmd := append([]string{"verify", "-CAfile", a.CertPath()}, args...)
	cmd = append(cmd, leafPath)
	out, err := exec.Command(openssl, cmd...).CombinedOutput()
	return string(out), err
}

// writePEM writes certs to a new file name in a temporary directory and
// returns its path.
func writePEM(t *testing.T, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b bytes.Buffer
	for _, c := range certs {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConstraintIsInTheCertificate proves that a constrained CA's limit
// does not depend on tlsbridge's own check: a leaf for a name outside it,
// signed with the CA key directly, is refused by a Go TLS client and by
// openssl verify. A permitted name, signed the same way, is accepted, so
// the refusal is the constraint and nothing else.
func TestConstraintIsInTheCertificate(t *testing.T) {
	a := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "example.com", "10.0.0.0/8")})
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
