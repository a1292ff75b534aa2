package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// Test keys, generated once: RSA key generation is slow.
var testKeys = sync.OnceValue(func() map[ca.KeyType]crypto.Signer {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return map[ca.KeyType]crypto.Signer{ca.KeyECDSAP256: ec, ca.KeyRSA2048: r}
})

func TestIssue(t *testing.T) {
	ecCA := catest.New(t)
	rsaCA := catest.NewWithOptions(t, ca.Options{Key: ca.KeyRSA2048})
	tests := []struct {
		name    string
		ca      *ca.Authority
		leafKey ca.KeyType
		names   []string
		verify  []string // names x509.Verify must accept
		wantDNS []string
		wantIPs []string
		wantCN  string
		wantSig x509.SignatureAlgorithm
	}{
		{"dns/ecdsa-ca/ecdsa-leaf", ecCA, ca.KeyECDSAP256, []string{"api.example.com"}, []string{"api.example.com"},
			[]string{"api.example.com"}, nil, "api.example.com", x509.ECDSAWithSHA256},
		{"dns/rsa-ca/rsa-leaf", rsaCA, ca.KeyRSA2048, []string{"api.example.com"}, []string{"api.example.com"},
			[]string{"api.example.com"}, nil, "api.example.com", x509.SHA256WithRSA},
		{"ipv4/rsa-ca/ecdsa-leaf", rsaCA, ca.KeyECDSAP256, []string{"127.0.0.1"}, []string{"127.0.0.1"},
			nil, []string{"127.0.0.1"}, "127.0.0.1", x509.SHA256WithRSA},
		{"ipv6/ecdsa-ca/rsa-leaf", ecCA, ca.KeyRSA2048, []string{"[::1]:443"}, []string{"::1"},
			nil, []string{"::1"}, "::1", x509.ECDSAWithSHA256},
		{"normalized-multi", ecCA, ca.KeyECDSAP256, []string{"API.Example.com.", "www.example.com", "api.example.com", "10.0.0.1"},
			[]string{"api.example.com", "www.example.com", "10.0.0.1"},
			[]string{"api.example.com", "www.example.com"}, []string{"10.0.0.1"}, "api.example.com", x509.ECDSAWithSHA256},
		{"idna", ecCA, ca.KeyECDSAP256, []string{"Bücher.example"}, []string{"xn--bcher-kva.example"},
			[]string{"xn--bcher-kva.example"}, nil, "xn--bcher-kva.example", x509.ECDSAWithSHA256},
		{"wildcard", ecCA, ca.KeyECDSAP256, []string{"*.Example.com"}, []string{"a.example.com"},
			[]string{"*.example.com"}, nil, "*.example.com", x509.ECDSAWithSHA256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKeys()[tt.leafKey]
			before := time.Now()
			leaf, der, err := tt.ca.Issue(tt.names, key.Public(), 48*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(leaf.Raw, der) {
				t.Errorf("returned DER differs from leaf.Raw")
			}
			for _, name := range tt.verify {
				_, err := leaf.Verify(x509.VerifyOptions{
					DNSName:   name,
					Roots:     tt.ca.Pool(),
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				})
				if err != nil {
					t.Errorf("Verify(DNSName %q) = %v, want nil", name, err)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: tt.ca.Pool()}); err == nil {
				t.Errorf("Verify(DNSName other.test) = nil, want a hostname error")
			}
			if !slices.Equal(leaf.DNSNames, tt.wantDNS) {
				t.Errorf("DNSNames = %q, want %q", leaf.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IPAddresses = %q, want %q", ips, tt.wantIPs)
			}
			if got := leaf.Subject.CommonName; got != tt.wantCN {
				t.Errorf("CommonName = %q, want %q", got, tt.wantCN)
			}
			if got := leaf.SignatureAlgorithm; got != tt.wantSig {
				t.Errorf("SignatureAlgorithm = %v, want %v", got, tt.wantSig)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage = %v, want [ServerAuth]", leaf.ExtKeyUsage)
			}
			wantKU := x509.KeyUsageDigitalSignature
			if tt.leafKey == ca.KeyRSA2048 {
				wantKU |= x509.KeyUsageKeyEncipherment
			}
			if leaf.KeyUsage != wantKU {
				t.Errorf("KeyUsage = %b, want %b", leaf.KeyUsage, wantKU)
			}
			if leaf.IsCA {
				t.Errorf("IsCA = true, want false")
			}
			if !slices.Equal(leaf.AuthorityKeyId, tt.ca.Cert.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
				t.Errorf("AuthorityKeyId = %x, want the CA's SubjectKeyId %x", leaf.AuthorityKeyId, tt.ca.Cert.SubjectKeyId)
			}
			if got := leaf.SerialNumber.BitLen(); got < 100 || got > 128 {
				t.Errorf("serial has %d bits, want ~128", got)
			}
			if got, want := leaf.NotBefore, before.Add(-time.Hour).Truncate(time.Second); got.Before(want.Add(-2*time.Second)) || got.After(want.Add(2*time.Second)) {
				t.Errorf("NotBefore = %v, want ~%v (now - 1h)", got, want)
			}
			if got, want := leaf.NotAfter, before.Add(48*time.Hour); got.Before(want.Add(-2*time.Second)) || got.After(want.Add(2*time.Second)) {
				t.Errorf("NotAfter = %v, want ~%v (now + validity)", got, want)
			}
		})
	}
}

func TestIssueSerialsDiffer(t *testing.T) {
	a := catest.New(t)
	pub := testKeys()[ca.KeyECDSAP256].Public()
	seen := map[string]bool{}
	for range 20 {
		leaf, _, err := a.Issue([]string{"example.com"}, pub, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := leaf.SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

func TestIssueDefaultValidity(t *testing.T) {
	a := catest.New(t)
	leaf, _, err := a.Issue([]string{"example.com"}, testKeys()[ca.KeyECDSAP256].Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := leaf.NotAfter.Sub(leaf.NotBefore), ca.DefaultLeafValidity+time.Hour; got < want-time.Minute || got > want+time.Minute {
		t.Errorf("leaf lifetime = %v, want %v", got, want)
	}
}

func TestIssueErrors(t *testing.T) {
	a := catest.New(t)
	pub := testKeys()[ca.KeyECDSAP256].Public()
	tests := []struct {
		name  string
		names []string
		pub   crypto.PublicKey
		want  error // nil: any error
	}{
		{"no-names", nil, pub, ca.ErrNoNames},
		{"bad-name", []string{"bad host"}, pub, nil},
		{"empty-name", []string{""}, pub, nil},
		{"unsupported-key", []string{"example.com"}, struct{}{}, ca.ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := a.Issue(tt.names, tt.pub, time.Hour)
			if err == nil {
				t.Fatalf("Issue(%q) error = nil, want error", tt.names)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Issue(%q) error = %v, want %v", tt.names, err, tt.want)
			}
		})
	}
}

func TestPermittedHosts(t *testing.T) {
	a := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "Example.com", ".corp.test", "10.0.0.0/8", "192.0.2.7")})
	if !a.Cert.PermittedDNSDomainsCritical {
		t.Errorf("PermittedDNSDomainsCritical = false, want true")
	}
	pub := testKeys()[ca.KeyECDSAP256].Public()
	tests := []struct {
		name   string
		permit bool
	}{
		{"example.com", true},
		{"api.example.com", true},
		{"a.corp.test", true},
		{"corp.test", false}, // leading dot: subdomains only
		{"10.1.2.3", true},
		{"192.0.2.7", true},
		{"localhost", true}, // always: the proxy's own certificate
		{"127.0.0.1", true},
		{"::1", true},
		{"evil.com", false},
		{"notexample.com", false},
		{"192.0.2.8", false},
		{"8.8.8.8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, _, err := a.Issue([]string{tt.name}, pub, time.Hour)
			if !tt.permit {
				if !errors.Is(err, ca.ErrNotPermitted) {
					t.Errorf("Issue(%q) error = %v, want ErrNotPermitted", tt.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue(%q) = %v, want nil", tt.name, err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.name, Roots: a.Pool()}); err != nil {
				t.Errorf("Verify(%q) = %v, want nil", tt.name, err)
			}
		})
	}

	// A leaf signed around Issue's check, with the CA key straight from
	// disk, is rejected by x509.Verify: the constraint is in the CA.
	for _, name := range []string{"evil.com", "8.8.8.8"} {
		t.Run("verify-rejects/"+name, func(t *testing.T) {
			leaf := signBypassingIssue(t, a, name)
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: a.Pool()})
			var inv x509.CertificateInvalidError
			if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
				t.Errorf("Verify(%q) = %v, want CANotAuthorizedForThisName", name, err)
			}
		})
	}

	t.Run("cache", func(t *testing.T) {
		c := catest.NewCache(t, a)
		if _, err := c.Get("api.example.com", ca.KeyRSA2048); err != nil {
			t.Errorf("Get(api.example.com) = %v, want nil", err)
		}
		if _, err := c.Get("evil.com", ca.KeyRSA2048); !errors.Is(err, ca.ErrNotPermitted) {
			t.Errorf("Get(evil.com) error = %v, want ErrNotPermitted", err)
		}
	})

	t.Run("bad-entry", func(t *testing.T) {
		for _, h := range []string{"*.example.com", "example.com:443", "", "a..b"} {
			if _, err := ca.ParsePermittedHost(h); !errors.Is(err, ca.ErrBadPermittedHost) {
				t.Errorf("ParsePermittedHost(%q) error = %v, want ErrBadPermittedHost", h, err)
			}
		}
	})
}

func signBypassingIssue(t *testing.T, a *ca.Authority, name string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, a.KeyPath()))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, testKeys()[ca.KeyECDSAP256].Public(), key.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestPermits(t *testing.T) {
	constrained := catest.NewWithOptions(t, ca.Options{PermittedHosts: catest.PermittedHosts(t, "example.com", ".corp.test", "10.0.0.0/8")})
	open := catest.New(t)
	tests := []struct {
		name   string
		ca     *ca.Authority
		host   string
		permit bool
	}{
		{"constrained/exact", constrained, "example.com", true},
		{"constrained/subdomain", constrained, "API.Example.com.", true},
		{"constrained/with-port", constrained, "api.example.com:443", true},
		{"constrained/dot-subdomain", constrained, "a.corp.test", true},
		{"constrained/dot-apex", constrained, "corp.test", false},
		{"constrained/ip-in-range", constrained, "10.9.8.7", true},
		{"constrained/ipv6-bracketed-loopback", constrained, "[::1]", true},
		{"constrained/localhost", constrained, "localhost", true},
		{"constrained/other-domain", constrained, "evil.com", false},
		{"constrained/suffix-trick", constrained, "notexample.com", false},
		{"constrained/ip-outside", constrained, "8.8.8.8", false},
		{"unconstrained/any", open, "evil.com", true},
		{"unconstrained/ip", open, "8.8.8.8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ca.Permits(tt.host)
			if tt.permit {
				if err != nil {
					t.Errorf("Permits(%q) = %v, want nil", tt.host, err)
				}
				return
			}
			if !errors.Is(err, ca.ErrNotPermitted) {
				t.Fatalf("Permits(%q) = %v, want ErrNotPermitted", tt.host, err)
			}
			if !strings.Contains(err.Error(), "[ca] permitted_hosts") {
				t.Errorf("Permits(%q) = %q, want it to name [ca] permitted_hosts", tt.host, err)
			}
		})
	}
}

func TestParsePermittedHost(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Example.COM", "example.com"},
		{".corp.test", ".corp.test"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8::0:1", "2001:db8::1"},
		{"2001:db8::1/32", "2001:db8::/32"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			h, err := ca.ParsePermittedHost(tt.in)
			if err != nil {
				t.Fatalf("ParsePermittedHost(%q) error = %v", tt.in, err)
			}
			if got := h.String(); got != tt.want {
				t.Errorf("ParsePermittedHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
