package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

const (
	// caValidity is long because replacing a CA means re-installing it in
	// every trust store; 10 years matches mkcert. Browsers' 398-day limit
	// applies to leaves, not to roots.
	caValidity = 10 * 365 * 24 * time.Hour
	// backdate moves NotBefore into the past so a client whose clock runs a
	// little behind does not reject a brand-new certificate.
	backdate = time.Hour
)

// newAuthority generates a CA key and a self-signed CA certificate.
func newAuthority(opts Options) (*Authority, error) {
	kt := opts.Key
	if kt == 0 {
		kt = KeyRSA2048
	}
	if !kt.valid() {
		return nil, fmt.Errorf("CA key: %v: %w (want ecdsa-p256 or rsa2048)", kt, ErrUnknownKeyType)
	}
	signer, serial, ski, err := newCAKey(kt)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The host name and a random id make two installs distinguishable
		// in a trust store listing (and in `tlsbridge ca uninstall`), even
		// on the same machine.
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("tlsbridge CA %s %s", host, hex.EncodeToString(id)),
			Organization: []string{"tlsbridge"},
		},
		NotBefore: now.Add(-backdate),
		NotAfter:  now.Add(caValidity),
		// cA=TRUE in a valid basicConstraints extension is what makes this
		// a CA at all (RFC 5280 §4.2.1.9).
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Path length 0 (set to 1 below for an RSA CA): an ECDSA CA signs
		// every leaf itself, as fast as any intermediate could.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		// CertSign and CRLSign are what the CA/Browser Forum Baseline
		// Requirements (§7.1.2.1) require of a root. DigitalSignature is
		// allowed there too and lets the CA key sign non-certificate data
		// (an OCSP response) directly, should that ever be needed.
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		// The SKI lets verifiers (and leaves' AuthorityKeyId) find this CA
		// among several with the same subject, e.g. after `ca init -force`.
		SubjectKeyId: ski,
	}
	if kt == KeyRSA2048 {
		// Explicit, so a change of Go's default (e.g. to RSA-PSS) can never
		// produce a CA that Windows XP or Java 6 cannot verify.
		tmpl.SignatureAlgorithm = x509.SHA256WithRSA
		// Path length 1: the CA may sign exactly one level of sub-CA, the
		// ECDSA intermediate a Cache makes in memory so that an ECDSA leaf
		// costs one ECDSA signature instead of an RSA one (intermediate.go).
		// This grants the key holder nothing new, since whoever has this
		// key can sign leaves directly; the intermediate has path length 0,
		// so its key (in memory, beside this one) can sign leaves but
		// never another CA.
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 1, false
	}
	if len(opts.PermittedHosts) > 0 {
		applyPermittedHosts(tmpl, opts.PermittedHosts)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return &Authority{
		Cert:    cert,
		signer:  signer,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// serialLimit is 2^128.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newCAKey makes what every CA certificate here starts from: a key of type
// kt, a random serial and the key's subject key identifier.
func newCAKey(kt KeyType) (key crypto.Signer, serial *big.Int, ski []byte, err error) {
	if key, err = generateKey(kt); err != nil {
		return nil, nil, nil, err
	}
	if serial, err = randomSerial(); err != nil {
		return nil, nil, nil, err
	}
	if ski, err = subjectKeyID(key.Public()); err != nil {
		return nil, nil, nil, err
	}
	return key, serial, ski, nil
}

// randomSerial returns a 128-bit serial from crypto/rand. Unpredictable
// serials are what the CA/Browser Forum requires (≥ 64 bits of entropy) and
// rule out chosen-prefix collision attacks; two leaves for one host never
// share a serial, which some clients (Firefox) reject.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		// RFC 5280 §4.1.2.2: serials are positive.
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID is RFC 7093 §2 method 1: the leftmost 160 bits of the
// SHA-256 hash of the subjectPublicKey BIT STRING (what Go itself has used
// since Go 1.25; RFC 5280's SHA-1 method is not required).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spkiDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var spki struct {
		Algorithm        pkix.AlgorithmIdentifier
		SubjectPublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spkiDER, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(spki.SubjectPublicKey.Bytes)
	return sum[:20], nil
}
