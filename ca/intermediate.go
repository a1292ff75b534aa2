package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// intermediateSuffix follows the CA's common name in the intermediate's, so
// a person reading a chain sees which CA it belongs to, and the two
// subjects never coincide (a subject equal to its issuer's would make the
// intermediate look self-issued to path builders, RFC 5280 §6.1).
const intermediateSuffix = " leaf issuer"

// ECDSAIssuer says which certificate signs a Cache's ECDSA P-256 leaves,
// which decides what a never-seen host costs the proxy: one ECDSA signature
// (about 0.05 ms) or one RSA-2048 signature (about 1.3 ms). RSA leaves are
// always signed by the CA itself, because the apps that need them (Windows
// XP, Java 6) cannot verify an ECDSA signature anywhere in the chain.
type ECDSAIssuer uint8

// How ECDSA leaves are signed; Authority.ECDSAIssuer and Cache.ECDSAIssuer
// report which applies.
const (
	// ECDSAIssuerIntermediate: an RSA CA signs, once per process, an ECDSA
	// P-256 intermediate that lives only in memory and signs the ECDSA
	// leaves; it is served as the leaves' second certificate.
	ECDSAIssuerIntermediate ECDSAIssuer = iota + 1
	// ECDSAIssuerECDSACA: the CA is ECDSA and signs them itself, which is
	// as fast as an intermediate would be.
	ECDSAIssuerECDSACA
	// ECDSAIssuerCAPathLenZero: the RSA CA forbids sub-CAs (path length 0,
	// as tlsbridge made CAs before it used an intermediate, or an imported
	// CA), so it signs ECDSA leaves itself, an RSA signature each.
	ECDSAIssuerCAPathLenZero
	// ECDSAIssuerCANotRoot: the RSA CA is not self-signed (an imported
	// sub-CA of another PKI), so it signs ECDSA leaves itself: a further
	// level below it could exceed a path length set above it, which
	// tlsbridge cannot see, and apps that trust only that PKI's root would
	// need the sub-CA served as well.
	ECDSAIssuerCANotRoot
	// ECDSAIssuerCAExpired: the CA has expired and signs nothing.
	ECDSAIssuerCAExpired
)

// String returns a short name for logs: "intermediate", "ecdsa-ca",
// "ca-path-len-0", "ca-not-root" or "ca-expired".
func (e ECDSAIssuer) String() string {
	switch e {
	case ECDSAIssuerIntermediate:
		return "intermediate"
	case ECDSAIssuerECDSACA:
		return "ecdsa-ca"
	case ECDSAIssuerCAPathLenZero:
		return "ca-path-len-0"
	case ECDSAIssuerCANotRoot:
		return "ca-not-root"
	case ECDSAIssuerCAExpired:
		return "ca-expired"
	}
	return fmt.Sprintf("ECDSAIssuer(%d)", uint8(e))
}

// Explain returns one sentence for a person (`tlsbridge ca info`, the
// startup log): who signs ECDSA leaves, what a new host costs, and, when
// that is an RSA signature, how to get the faster path.
func (e ECDSAIssuer) Explain() string {
	switch e {
	case ECDSAIssuerIntermediate:
		return "ECDSA leaves are signed by an in-memory ECDSA P-256 intermediate that tlsbridge makes at each start, so a new host costs one ECDSA signature (RSA leaves are signed by the CA)"
	case ECDSAIssuerECDSACA:
		return "ECDSA leaves are signed by the ECDSA CA itself, so a new host costs one ECDSA signature"
	case ECDSAIssuerCAPathLenZero:
		return "the CA forbids an intermediate (path length 0: made by an older tlsbridge, or imported), so it signs ECDSA leaves itself and each new host costs an RSA signature (~1 ms); `tlsbridge ca init -force` (then re-install the CA) makes a CA that allows the faster path"
	case ECDSAIssuerCANotRoot:
		return "the CA is not self-signed (an imported sub-CA), so it signs ECDSA leaves itself and each new host costs an RSA signature (~1 ms); import a root CA, or run `tlsbridge ca init -force` (then install the CA), for the faster path"
	case ECDSAIssuerCAExpired:
		return "the CA has expired and signs no leaves: run `tlsbridge ca init -force` and install the new CA"
	}
	return e.String()
}

// ECDSAIssuer reports how a Cache made now for a would sign ECDSA leaves.
func (a *Authority) ECDSAIssuer() ECDSAIssuer {
	return ecdsaIssuerFor(a.Cert, time.Now())
}

// ecdsaIssuerFor decides, for a CA certificate at time now, whether ECDSA
// leaves get an intermediate.
func ecdsaIssuerFor(c *x509.Certificate, now time.Time) ECDSAIssuer {
	switch {
	case !now.Before(c.NotAfter):
		return ECDSAIssuerCAExpired
	case !isRSA(c):
		return ECDSAIssuerECDSACA
	case !permitsSubCA(c):
		return ECDSAIssuerCAPathLenZero
	case !selfSigned(c):
		return ECDSAIssuerCANotRoot
	}
	return ECDSAIssuerIntermediate
}

func isRSA(c *x509.Certificate) bool {
	_, ok := c.PublicKey.(*rsa.PublicKey)
	return ok
}

// permitsSubCA reports whether c may sign one more CA below it (RFC 5280
// §4.2.1.9). crypto/x509 parses an absent pathLenConstraint as MaxPathLen
// -1 and an explicit 0 as MaxPathLen 0 with MaxPathLenZero set.
func permitsSubCA(c *x509.Certificate) bool {
	return c.BasicConstraintsValid && c.IsCA && (c.MaxPathLen < 0 || c.MaxPathLen >= 1)
}

// selfSigned reports whether c is a root: issued by itself. The signature
// is not checked: a trust anchor's own signature is never verified, and
// crypto/x509 would refuse an old root's SHA-1 one.
func selfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		return false
	}
	return len(c.AuthorityKeyId) == 0 || bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId)
}

// newIntermediate makes the ECDSA P-256 CA that signs ECDSA leaves for a,
// valid from now until a expires, signed by a's RSA key. Its key is
// generated here and lives only in the returned issuer: it is never
// written or logged, and dies with the process (a restart makes a new
// one). The caller has checked ecdsaIssuerFor(a.Cert, now).
func newIntermediate(a *Authority, now time.Time) (*issuer, error) {
	root := a.Cert
	key, serial, ski, err := newCAKey(KeyECDSAP256)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Named after the CA, and in the CA's organization, so a person
		// inspecting a leaf's chain sees whose it is.
		Subject: pkix.Name{
			CommonName:   intermediateName(root.Subject.CommonName),
			Organization: slices.Clone(root.Subject.Organization),
		},
		// Backdated like every certificate here, for clients whose clocks
		// run behind, but never before the CA itself was valid.
		NotBefore: maxTime(now.Add(-backdate), root.NotBefore),
		// Expires with the CA, so it never needs renewing while the CA is
		// valid (and can never outlive it, which strict verifiers reject).
		NotAfter: root.NotAfter,
		// A CA (RFC 5280 §4.2.1.9) with path length 0: it signs leaves
		// only, so its key can never make another CA.
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		// CertSign to sign leaves; CRLSign because the CA/Browser Forum
		// Baseline Requirements (§7.1.2.10.7) require both of every CA
		// certificate, as for the root. No DigitalSignature: that is only
		// for a CA key that signs OCSP responses, which this one never does.
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// serverAuth only: verifiers (Go, OpenSSL, Windows) intersect EKUs
		// down the chain, so nothing below this CA can be a client or
		// code-signing certificate, even if the key leaked.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// The SKI is what the leaves' AuthorityKeyId points at; the AKI
		// ties this certificate to the CA's key among CAs with similar
		// subjects (RFC 5280 §4.2.1.1-2, and -x509_strict requires both).
		SubjectKeyId:   ski,
		AuthorityKeyId: root.SubjectKeyId,
		// The CA's name constraints, copied: RFC 5280 §6.1 leaves it to
		// the verifier whether a trust anchor's own constraints apply (Go
		// and OpenSSL apply them, not every client does), while an
		// intermediate's always apply. Critical is copied too, so a client
		// that cannot process them refuses the chain instead of ignoring
		// the limit (§4.2.1.10).
		PermittedDNSDomainsCritical: root.PermittedDNSDomainsCritical,
		PermittedDNSDomains:         root.PermittedDNSDomains,
		ExcludedDNSDomains:          root.ExcludedDNSDomains,
		PermittedIPRanges:           root.PermittedIPRanges,
		ExcludedIPRanges:            root.ExcludedIPRanges,
		PermittedEmailAddresses:     root.PermittedEmailAddresses,
		ExcludedEmailAddresses:      root.ExcludedEmailAddresses,
		PermittedURIDomains:         root.PermittedURIDomains,
		ExcludedURIDomains:          root.ExcludedURIDomains,
		// SHA-256 with PKCS #1 v1.5, stated explicitly as for the CA
		// itself: what every client verifies, whatever Go's default
		// becomes (RSA-PSS would fail on older ones).
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), a.signer)
	if err != nil {
		return nil, fmt.Errorf("sign ECDSA intermediate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse ECDSA intermediate: %w", err)
	}
	return &issuer{cert: cert, signer: key}, nil
}

// intermediateName is rootCN plus intermediateSuffix, with rootCN cut (at a
// character boundary) so the whole stays within ubCommonName.
func intermediateName(rootCN string) string {
	if rootCN == "" {
		rootCN = "tlsbridge CA"
	}
	if room := ubCommonName - len(intermediateSuffix); len(rootCN) > room {
		rootCN = rootCN[:room]
		for !utf8.ValidString(rootCN) {
			rootCN = rootCN[:len(rootCN)-1]
		}
		rootCN = strings.TrimRight(rootCN, " ")
	}
	return rootCN + intermediateSuffix
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
