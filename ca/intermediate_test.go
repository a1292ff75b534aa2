package ca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// TestIntermediate checks the in-memory ECDSA intermediate of a new RSA CA
// field by field, and that an ECDSA leaf chains through it to the CA alone.
func TestIntermediate(t *testing.T) {
	plain := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	constrained := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048, PermittedHosts: catest.PermittedHosts(t, "example.com", "10.0.0.0/8")})
	for _, tt := range []struct {
		name string
		ca   *ca.Authority
		host string
	}{
		{"rsa-ca", plain, "api.example.com"},
		{"constrained-rsa-ca", constrained, "api.example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := tt.ca.Cert
			c := catest.NewCache(t, tt.ca)
			if got := c.ECDSAIssuer(); got != ca.ECDSAIssuerIntermediate {
				t.Fatalf("ECDSAIssuer() = %v, want %v", got, ca.ECDSAIssuerIntermediate)
			}
			inter := c.Intermediate()
			if inter == nil {
				t.Fatal("Intermediate() = nil, want the ECDSA intermediate")
			}
			cert, err := c.Get(tt.host, ca.KeyECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			if len(cert.Certificate) != 2 || !bytes.Equal(cert.Certificate[1], inter.Raw) {
				t.Fatalf("chain = %d certificates, want [leaf, intermediate] (the CA stays out)", len(cert.Certificate))
			}

			// The chain: leaf → intermediate → CA, and nothing else.
			if !bytes.Equal(leaf.RawIssuer, inter.RawSubject) || leaf.Issuer.String() != inter.Subject.String() {
				t.Errorf("leaf issuer = %q, want the intermediate %q", leaf.Issuer, inter.Subject)
			}
			if !bytes.Equal(inter.RawIssuer, root.RawSubject) {
				t.Errorf("intermediate issuer = %q, want the CA %q", inter.Issuer, root.Subject)
			}
			if err := leaf.CheckSignatureFrom(inter); err != nil {
				t.Errorf("leaf signature by the intermediate: %v", err)
			}
			if err := inter.CheckSignatureFrom(root); err != nil {
				t.Errorf("intermediate signature by the CA: %v", err)
			}
			if !bytes.Equal(leaf.AuthorityKeyId, inter.SubjectKeyId) || len(inter.SubjectKeyId) != 20 {
				t.Errorf("leaf AuthorityKeyId %x, intermediate SubjectKeyId %x: want equal, 20 bytes", leaf.AuthorityKeyId, inter.SubjectKeyId)
			}
			if !bytes.Equal(inter.AuthorityKeyId, root.SubjectKeyId) {
				t.Errorf("intermediate AuthorityKeyId %x, want the CA's SubjectKeyId %x", inter.AuthorityKeyId, root.SubjectKeyId)
			}
			intermediates := x509.NewCertPool()
			intermediates.AddCert(inter)
			chains, err := leaf.Verify(x509.VerifyOptions{
				DNSName:       tt.host,
				Roots:         tt.ca.Pool(), // the CA only
				Intermediates: intermediates,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Fatalf("Verify(%q) against the CA with the intermediate: %v", tt.host, err)
			}
			if got := chains[0]; len(got) != 3 || !got[1].Equal(inter) || !got[2].Equal(root) {
				t.Errorf("verified chain has %d certificates, want leaf, intermediate, CA", len(got))
			}
			var uae x509.UnknownAuthorityError
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.host, Roots: tt.ca.Pool()}); !errors.As(err, &uae) {
				t.Errorf("Verify without the intermediate = %v, want x509.UnknownAuthorityError", err)
			}

			// The intermediate itself.
			if !inter.BasicConstraintsValid || !inter.IsCA {
				t.Errorf("basic constraints valid=%v cA=%v, want a CA", inter.BasicConstraintsValid, inter.IsCA)
			}
			if inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
				t.Errorf("MaxPathLen = %d, MaxPathLenZero = %v, want 0, true (leaves only)", inter.MaxPathLen, inter.MaxPathLenZero)
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; inter.KeyUsage != want {
				t.Errorf("KeyUsage = %b, want %b", inter.KeyUsage, want)
			}
			if !slices.Equal(inter.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || len(inter.UnknownExtKeyUsage) != 0 {
				t.Errorf("ExtKeyUsage = %v %v, want serverAuth only", inter.ExtKeyUsage, inter.UnknownExtKeyUsage)
			}
			if k, ok := inter.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", inter.PublicKey)
			}
			if inter.SignatureAlgorithm != x509.SHA256WithRSA {
				t.Errorf("SignatureAlgorithm = %v, want %v", inter.SignatureAlgorithm, x509.SHA256WithRSA)
			}
			if want := root.Subject.CommonName + " leaf issuer"; inter.Subject.CommonName != want {
				t.Errorf("CommonName = %q, want %q", inter.Subject.CommonName, want)
			}
			if !slices.Equal(inter.Subject.Organization, root.Subject.Organization) {
				t.Errorf("Organization = %q, want the CA's %q", inter.Subject.Organization, root.Subject.Organization)
			}
			if inter.SerialNumber.BitLen() < 64 || inter.SerialNumber.Cmp(root.SerialNumber) == 0 {
				t.Errorf("serial %v: want ≥ 64 random bits, not the CA's", inter.SerialNumber)
			}
			if !inter.NotAfter.Equal(root.NotAfter) {
				t.Errorf("NotAfter = %v, want the CA's %v", inter.NotAfter, root.NotAfter)
			}
			if d := time.Since(inter.NotBefore); inter.NotBefore.Before(root.NotBefore) || d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("NotBefore = %v (%v ago), want an hour ago and not before the CA's %v", inter.NotBefore, d, root.NotBefore)
			}
			if leaf.NotAfter.After(inter.NotAfter) {
				t.Errorf("leaf NotAfter %v is after the intermediate's %v", leaf.NotAfter, inter.NotAfter)
			}

			// Name constraints, copied from the CA.
			if !slices.Equal(inter.PermittedDNSDomains, root.PermittedDNSDomains) || inter.PermittedDNSDomainsCritical != root.PermittedDNSDomainsCritical {
				t.Errorf("PermittedDNSDomains = %q (critical %v), want the CA's %q (critical %v)",
					inter.PermittedDNSDomains, inter.PermittedDNSDomainsCritical, root.PermittedDNSDomains, root.PermittedDNSDomainsCritical)
			}
			if got, want := ipNets(inter.PermittedIPRanges), ipNets(root.PermittedIPRanges); !slices.Equal(got, want) {
				t.Errorf("PermittedIPRanges = %q, want the CA's %q", got, want)
			}
			if len(root.PermittedDNSDomains) > 0 {
				if _, err := c.Get("evil.com", ca.KeyECDSAP256); !errors.Is(err, ca.ErrNotPermitted) {
					t.Errorf("Get(evil.com, ECDSA) = %v, want ErrNotPermitted", err)
				}
			}

			// Every ECDSA leaf shares the one intermediate; RSA leaves are
			// the CA's own.
			other, err := c.Get("other.example.com", ca.KeyECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(other.Certificate[1], inter.Raw) {
				t.Errorf("a second ECDSA leaf came with another intermediate")
			}
			rsaLeaf, err := c.Get(tt.host, ca.KeyRSA2048)
			if err != nil {
				t.Fatal(err)
			}
			if len(rsaLeaf.Certificate) != 2 || !bytes.Equal(rsaLeaf.Certificate[1], root.Raw) {
				t.Errorf("RSA leaf chain: want [leaf, CA]")
			}
			if err := rsaLeaf.Leaf.CheckSignatureFrom(root); err != nil || !bytes.Equal(rsaLeaf.Leaf.RawIssuer, root.RawSubject) {
				t.Errorf("RSA leaf issuer %q, signature by the CA: %v; want the CA's own", rsaLeaf.Leaf.Issuer, err)
			}
		})
	}
}

func ipNets(nets []*net.IPNet) []string {
	var s []string
	for _, n := range nets {
		s = append(s, n.String())
	}
	return s
}

// TestECDSAIssuer checks which CAs get an intermediate for ECDSA leaves:
// RSA roots that allow one more level do; ECDSA CAs need none; CAs with
// path length 0 (from an older tlsbridge, or imported), imported sub-CAs
// and expired CAs sign ECDSA leaves themselves, as before. In every case
// the leaf verifies against the trust anchor with only what the proxy
// serves.
func TestECDSAIssuer(t *testing.T) {
	rsaKey := testKeys()[ca.KeyRSA2048]
	parentKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parent := buildCA(t, "other PKI root", parentKey, nil, nil, func(c *x509.Certificate) { c.MaxPathLen = -1 })
	now := time.Now()
	tests := []struct {
		name   string
		ca     *ca.Authority
		anchor *x509.Certificate // the client's trust anchor; nil: the CA
		want   ca.ECDSAIssuer
	}{
		{"new-rsa-ca", catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048}), nil, ca.ECDSAIssuerIntermediate},
		{"new-ecdsa-ca", catest.New(t), nil, ca.ECDSAIssuerECDSACA},
		{"rsa-path-len-0", importCA(t, buildCA(t, "old tlsbridge CA", rsaKey, nil, nil, func(c *x509.Certificate) {
			c.MaxPathLen, c.MaxPathLenZero = 0, true // what tlsbridge made before the intermediate
		}), rsaKey), nil, ca.ECDSAIssuerCAPathLenZero},
		{"rsa-path-len-absent", importCA(t, buildCA(t, "imported root", rsaKey, nil, nil, func(c *x509.Certificate) {
			c.MaxPathLen = -1
		}), rsaKey), nil, ca.ECDSAIssuerIntermediate},
		{"rsa-path-len-2", importCA(t, buildCA(t, "imported root", rsaKey, nil, nil, func(c *x509.Certificate) {
			c.MaxPathLen = 2
		}), rsaKey), nil, ca.ECDSAIssuerIntermediate},
		{"rsa-sub-ca", importCA(t, buildCA(t, "imported sub-CA", rsaKey, parent, parentKey, func(c *x509.Certificate) {
			c.MaxPathLen = -1
		}), rsaKey), parent, ca.ECDSAIssuerCANotRoot},
		{"rsa-expired", importCA(t, buildCA(t, "expired root", rsaKey, nil, nil, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
		}), rsaKey), nil, ca.ECDSAIssuerCAExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ca.ECDSAIssuer(); got != tt.want {
				t.Errorf("Authority.ECDSAIssuer() = %v, want %v", got, tt.want)
			}
			c := catest.NewCache(t, tt.ca)
			if got := c.ECDSAIssuer(); got != tt.want {
				t.Errorf("Cache.ECDSAIssuer() = %v, want %v", got, tt.want)
			}
			if got, want := c.Intermediate() != nil, tt.want == ca.ECDSAIssuerIntermediate; got != want {
				t.Errorf("Intermediate() = %v, want one: %v", c.Intermediate(), want)
			}
			cert, err := c.Get("api.example.com", ca.KeyECDSAP256)
			if tt.want == ca.ECDSAIssuerCAExpired {
				if !errors.Is(err, ca.ErrCAExpired) {
					t.Errorf("Get with an expired CA: err = %v, want ErrCAExpired", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantIssuer := tt.ca.Cert
			if tt.want == ca.ECDSAIssuerIntermediate {
				wantIssuer = c.Intermediate()
			}
			if len(cert.Certificate) != 2 || !bytes.Equal(cert.Certificate[1], wantIssuer.Raw) {
				t.Errorf("chain: want [leaf, %q]", wantIssuer.Subject)
			}
			if err := cert.Leaf.CheckSignatureFrom(wantIssuer); err != nil {
				t.Errorf("leaf signature by %q: %v", wantIssuer.Subject, err)
			}
			anchor := tt.anchor
			if anchor == nil {
				anchor = tt.ca.Cert
			}
			roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(anchor)
			for _, der := range cert.Certificate[1:] {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				intermediates.AddCert(c)
			}
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "api.example.com", Roots: roots, Intermediates: intermediates}); err != nil {
				t.Errorf("Verify against %q with the served chain: %v", anchor.Subject, err)
			}
		})
	}
}

// buildCA makes an RSA or ECDSA CA certificate for key the way another tool
// (or an older tlsbridge) would, signed by parent (self-signed if nil), with
// mod applied to the template.
func buildCA(t testing.TB, cn string, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, mod func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	mod(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// importCA turns cert and key into an Authority as `tlsbridge ca import`
// does.
func importCA(t testing.TB, cert *x509.Certificate, key crypto.Signer) *ca.Authority {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.Parse(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatalf("ca.Parse(%q): %v", cert.Subject, err)
	}
	return a
}
