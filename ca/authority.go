package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the CA directory.
const (
	CertFile = "ca.pem"     // the CA certificate, PEM, mode 0644
	KeyFile  = "ca-key.pem" // the CA private key, PKCS #8 PEM, mode 0600
	// ChainFile holds, for an imported sub-CA, its issuers from the one
	// that signed ca.pem up to the organisation's root, PEM, mode 0644.
	// Absent for a root CA.
	ChainFile = "chain.pem"
)

// Options configures a NEW CA. They have no effect when an existing CA is
// loaded.
type Options struct {
	// Key is the CA key type. If zero, KeyRSA2048: an RSA CA is the one the
	// oldest clients (Windows XP, Java 6) can verify.
	Key KeyType

	// PermittedHosts, if non-empty, limits the names the CA can sign with
	// X.509 name constraints (RFC 5280 §4.2.1.10), so a stolen CA key cannot
	// impersonate other sites. A plain domain ("example.com") permits it
	// and its subdomains, a leading dot (".example.com") only subdomains, an
	// IP address or CIDR ("10.0.0.0/8") permits those addresses. The
	// loopback names the proxy needs for its own certificate ("localhost",
	// 127.0.0.0/8, ::1) are always permitted as well. Entries come from
	// ParsePermittedHost (policy parses [ca] permitted_hosts with it).
	PermittedHosts []PermittedHost
}

// Authority is a CA that signs leaf certificates. It is safe for concurrent
// use. Its fields must not be modified.
type Authority struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Dir is the CA directory the Authority was loaded from or created in.
	Dir string

	signer  crypto.Signer
	certPEM []byte
	// chain is Cert's issuers, the root last; empty for a root CA.
	chain []*x509.Certificate
}

// Load reads the CA from dir. It returns an error wrapping ErrCANotFound if
// ca.pem or ca-key.pem is missing, ErrKeyMismatch if the key does not belong
// to the certificate, and ErrNotCA if the certificate cannot sign
// certificates. An expired CA loads (so it can still be exported and
// uninstalled), but Issue refuses to use it.
func Load(dir string) (*Authority, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, loadError(dir, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, loadError(dir, err)
	}
	a, err := parse(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, ChainFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	if len(chainPEM) > 0 {
		certs, err := parseCerts(chainPEM)
		if err != nil {
			return nil, fmt.Errorf("load CA from %s: %s: %w", dir, ChainFile, err)
		}
		if a.chain, err = orderChain(a.Cert, certs); err != nil {
			return nil, fmt.Errorf("load CA from %s: %s: %w", dir, ChainFile, err)
		}
	}
	a.Dir = dir
	return a, nil
}

// ParseWithChain is Parse for a sub-CA issued by an organisation's root
// (step-ca, Vault PKI, cert-manager, openssl): certPEM may carry the CA
// certificate followed by its issuers, and chainPEM (optional) more of
// them, in any order, up to and including the root. The chain is checked
// now: each certificate signed by the next, all valid now, path lengths
// and name constraints kept, and it must end in a self-signed root, the
// one apps trust (Root, and what Install installs). Leaves are then served
// with the chain up to, not including, the root.
func ParseWithChain(certPEM, keyPEM, chainPEM []byte) (*Authority, error) {
	a, err := parse(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	extra, err := parseCerts(append(append([]byte(nil), certPEM...), chainPEM...))
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	extra = extra[1:] // the CA itself
	if len(extra) == 0 {
		return a, nil
	}
	if a.chain, err = orderChain(a.Cert, extra); err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	// The full check a client makes (validity, path length, name
	// constraints), once, at import; Load only re-orders the saved chain,
	// so an expired CA still loads to be exported or uninstalled.
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(a.Root())
	for _, c := range a.chain[:len(a.chain)-1] {
		inter.AddCert(c)
	}
	if _, err := a.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("chain: %q does not verify up to %q: %w", a.Cert.Subject.String(), a.Root().Subject.String(), err)
	}
	return a, nil
}

// parseCerts parses every CERTIFICATE block of a PEM bundle; other blocks
// are skipped.
func parseCerts(bundle []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return out, nil
}

// orderChain returns c's issuers from pool, nearest first, up to a
// self-signed root, checking each signature. Certificates of pool that are
// not on the path are ignored (a bundle may hold other roots).
func orderChain(c *x509.Certificate, pool []*x509.Certificate) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for cur := c; !selfSigned(cur); {
		var next *x509.Certificate
		for _, p := range pool {
			if bytes.Equal(p.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(p) == nil {
				next = p
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("no issuer of %q (issued by %q) in the chain: %w (add it, up to the self-signed root, to the chain file)",
				cur.Subject.String(), cur.Issuer.String(), ErrIncompleteChain)
		}
		if len(chain) > len(pool) {
			return nil, fmt.Errorf("the chain loops at %q: %w", next.Subject.String(), ErrIncompleteChain)
		}
		chain = append(chain, next)
		cur = next
	}
	return chain, nil
}

// Root returns the certificate apps must trust: the self-signed root the
// chain ends in, or the CA itself if it is a root or was imported without
// its chain. Install, Uninstall and Status work on it.
func (a *Authority) Root() *x509.Certificate {
	if len(a.chain) > 0 {
		return a.chain[len(a.chain)-1]
	}
	return a.Cert
}

// Chain returns the CA's issuers, nearest first and the root last, or nil
// for a root CA. The caller must not modify it.
func (a *Authority) Chain() []*x509.Certificate { return a.chain }

// RootPEM returns Root in PEM form, what `tlsbridge ca export` and the
// admin listener's /ca.pem give apps to trust.
func (a *Authority) RootPEM() []byte {
	if len(a.chain) == 0 {
		return a.certPEM
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Root().Raw})
}

// served is what a leaf signed by the CA is sent with after the CA
// itself: its issuers without the root, which apps have and which would
// only add bytes to each handshake.
func (a *Authority) served() [][]byte {
	if len(a.chain) < 2 {
		return nil
	}
	out := make([][]byte, 0, len(a.chain)-1)
	for _, c := range a.chain[:len(a.chain)-1] {
		out = append(out, c.Raw)
	}
	return out
}

func loadError(dir string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		var pe *fs.PathError
		name := dir
		if errors.As(err, &pe) {
			name = pe.Path
		}
		return fmt.Errorf("load CA from %s: %s is missing: %w", dir, name, ErrCANotFound)
	}
	return fmt.Errorf("load CA from %s: %w", dir, err)
}

// Parse builds an Authority from a PEM CA certificate and its PEM private key
// (PKCS #8, PKCS #1 or SEC 1), as for `tlsbridge ca import`. The result has
// no Dir until it is saved with Save.
func Parse(certPEM, keyPEM []byte) (*Authority, error) {
	return parse(certPEM, keyPEM)
}

func parse(certPEM, keyPEM []byte) (*Authority, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no CERTIFICATE PEM block", CertFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("%s: %q: %w", CertFile, cert.Subject.String(), ErrNotCA)
	}
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := signer.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s and %s: %w", KeyFile, CertFile, ErrKeyMismatch)
	}
	return &Authority{
		Cert:    cert,
		signer:  signer,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
	}, nil
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil, errors.New("no PRIVATE KEY PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%T: %w (want RSA or ECDSA)", key, ErrUnsupportedKey)
}

// LoadOrCreate loads the CA from dir, or creates one with opts if neither
// ca.pem nor ca-key.pem exists. created reports whether a new CA was made.
// If another process is creating the CA at the same time, LoadOrCreate waits
// up to a second for it and loads that one. If only one of the two files
// exists and stays that way, it returns an error wrapping ErrCANotFound
// rather than replace the other.
func LoadOrCreate(dir string, opts Options) (a *Authority, created bool, err error) {
	a, err = Load(dir)
	if err == nil || !errors.Is(err, ErrCANotFound) {
		return a, false, err
	}
	if !exists(filepath.Join(dir, CertFile)) && !exists(filepath.Join(dir, KeyFile)) {
		a, err = Create(dir, opts, false)
		if err == nil {
			return a, true, nil
		}
		if !errors.Is(err, ErrCAExists) {
			return nil, false, err
		}
	}
	// Half a CA: another process is between writing ca-key.pem and ca.pem
	// (Create writes the key first), or a crash left it so. Give the other
	// process a moment; never paper over a lone key with a new CA.
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		a, err = Load(dir)
		if err == nil || !errors.Is(err, ErrCANotFound) {
			return a, false, err
		}
	}
	return nil, false, err
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Create makes a new CA with opts and writes it to dir (created with mode
// 0700 if missing): ca-key.pem with mode 0600, ca.pem with mode 0644. Each
// file is written to a temporary file and renamed into place, so a crash
// never leaves a truncated key. Without force, Create fails with an error
// wrapping ErrCAExists if either file exists; with force it replaces them
// (clients that trusted the old CA must trust the new one).
func Create(dir string, opts Options, force bool) (*Authority, error) {
	a, err := newAuthority(opts)
	if err != nil {
		return nil, fmt.Errorf("create CA in %s: %w", dir, err)
	}
	if err := a.Save(dir, force); err != nil {
		return nil, err
	}
	return a, nil
}

// Save writes a's certificate and key to dir, like Create, and sets a.Dir.
// It is how `tlsbridge ca import` stores a parsed CA. Because it sets a.Dir,
// it must not run concurrently with other uses of a.
func (a *Authority) Save(dir string, force bool) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.signer)
	if err != nil {
		return fmt.Errorf("save CA to %s: marshal key: %w", dir, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	created := !exists(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save CA to %s: %w", dir, err)
	}
	if created {
		// 0700 is all it takes on Unix; on Windows the mode means
		// nothing and the directory gets an ACL (perm_windows.go).
		if err := restrictDir(dir); err != nil {
			return fmt.Errorf("save CA to %s: %w", dir, err)
		}
	}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if !force {
		for _, p := range []string{keyPath, certPath} {
			if exists(p) {
				return fmt.Errorf("save CA to %s: %s: %w", dir, p, ErrCAExists)
			}
		}
	}
	// Key first: a crash in between leaves a key without a certificate,
	// which LoadOrCreate reports instead of silently replacing.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600, force); err != nil {
		return fmt.Errorf("save CA to %s: %w", dir, err)
	}
	if err := writeFileAtomic(certPath, a.certPEM, 0o644, force); err != nil {
		return fmt.Errorf("save CA to %s: %w", dir, err)
	}
	chainPath := filepath.Join(dir, ChainFile)
	if len(a.chain) > 0 {
		var chainPEM []byte
		for _, c := range a.chain {
			chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		if err := writeFileAtomic(chainPath, chainPEM, 0o644, true); err != nil {
			return fmt.Errorf("save CA to %s: %w", dir, err)
		}
	} else if err := os.Remove(chainPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A previous sub-CA's chain would not fit this CA.
		return fmt.Errorf("save CA to %s: %w", dir, err)
	}
	syncDir(dir)
	a.Dir = dir
	return nil
}

// writeFileAtomic writes data to a temporary file in path's directory and
// moves it to path. Without overwrite it uses a hard link, which fails if
// path exists, so two processes creating a CA at once cannot mix their
// files; on file systems without hard links it falls back to rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode, overwrite bool) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; Chmod makes the intended mode explicit
	// and independent of the umask.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if overwrite {
		return os.Rename(tmp, path)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, ErrCAExists)
		}
		if exists(path) {
			return fmt.Errorf("%s: %w", path, ErrCAExists)
		}
		return os.Rename(tmp, path)
	}
	return os.Remove(tmp)
}

// syncDir makes the renames durable where the platform supports it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: not supported on every OS
		d.Close()
	}
}

// CertPEM returns the CA certificate in PEM form. The caller must not modify
// the returned slice.
func (a *Authority) CertPEM() []byte { return a.certPEM }

// CertDER returns the CA certificate in DER form. The caller must not modify
// the returned slice.
func (a *Authority) CertDER() []byte { return a.Cert.Raw }

// CertPath returns the path of ca.pem in a.Dir.
func (a *Authority) CertPath() string { return filepath.Join(a.Dir, CertFile) }

// KeyPath returns the path of ca-key.pem in a.Dir.
func (a *Authority) KeyPath() string { return filepath.Join(a.Dir, KeyFile) }

// KeyType returns the CA key's type, or 0 for an imported key of another
// type or size.
func (a *Authority) KeyType() KeyType {
	k, _ := keyTypeOf(a.Cert.PublicKey)
	return k
}

// Fingerprint returns the SHA-256 fingerprint of the CA certificate as
// colon-separated upper-case hex, the form browsers and `openssl x509
// -fingerprint -sha256` show.
func (a *Authority) Fingerprint() string { return fingerprint(a.Cert) }

// RootFingerprint is Fingerprint of Root, the certificate apps trust.
func (a *Authority) RootFingerprint() string { return fingerprint(a.Root()) }

// fingerprint is Fingerprint for any certificate; keytool -list prints the
// same form.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// Pool returns a new certificate pool holding only the CA certificate, for
// clients (and tests) that should trust this CA and nothing else.
func (a *Authority) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.Cert)
	return p
}
