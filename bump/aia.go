package bump

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// Incomplete server chains ([upstream] fetch_intermediates): a server that
// sends its leaf without the intermediate fails verification with "unknown
// authority" although the configured roots would validate the completed
// chain. Browsers (and squid since 4.x) complete it from the leaf's AIA
// "CA Issuers" URL; with fetch_intermediates, tlsbridge does the same, for
// the rule's own connections only:
//
//   - only after the normal verification failed with an unknown authority,
//     and only for an http:// CA Issuers URL of the leaf (RFC 5280
//     4.2.2.1; https would need a verified chain of its own);
//   - the answer is bounded (aiaMaxBytes, aiaTimeout), parsed as DER, PEM or
//     a PKCS #7 certs-only bundle, and only CA certificates are kept;
//   - fetched through the rule's parent proxy when it has one;
//   - never from tlsbridge's own listeners (Server.dial's loop guard), and
//     from loopback, link-local or unspecified addresses only when the
//     server being verified is itself on loopback (a server on the network
//     cannot make tlsbridge request a local admin port);
//   - cached by URL, parent and whether a local address was allowed,
//     until the certificate expires or aiaTTL passes (failures for
//     aiaNegativeTTL, a refused local URL not at all), bounded to
//     aiaCacheSize entries; concurrent fetches of one key are one GET;
//   - the chain is then verified again with the same roots and name: the
//     fetched certificates are only intermediates, never trusted on their
//     own; a resumed session, whose chain was verified when it was made,
//     is checked for expiry and name only.

const (
	aiaMaxBytes    = 64 << 10 // a certificate is 1-2 KiB; a PKCS #7 bundle a few
	aiaTimeout     = 5 * time.Second
	aiaTTL         = 24 * time.Hour
	aiaNegativeTTL = time.Minute
	aiaCacheSize   = 256
)

// aiaFetcher fetches and caches intermediates. One per Server (its
// cache outlives reloads: a URL names the same certificate whatever the
// policy) and one per `check`.
type aiaFetcher struct {
	dial    dialFunc      // Server.dial (loop guard) or check's dialer
	log     *logrus.Entry // nil: check, which prints instead
	metrics *metrics      // nil: check

	mu    sync.Mutex
	cache map[aiaKey]aiaEntry
	calls map[aiaKey]*aiaCall // fetches under way, which later askers wait for
}

// aiaKey is what decides the answer of a fetch, not just its URL: the
// parent it goes through (another parent may resolve the name
// differently, or refuse it) and whether a local address is allowed (a
// remote server's refusal must not answer a loopback server, nor a
// loopback server's fetch a remote one).
type aiaKey struct {
	url    string
	parent string // the parent proxy's URL and credentials; "" for none
	local  bool
}

type aiaEntry struct {
	certs   []*x509.Certificate
	err     error
	expires time.Time
}

// aiaCall is one fetch under way; done is closed when certs and err are
// set.
type aiaCall struct {
	done  chan struct{}
	certs []*x509.Certificate
	err   error
	ended bool // the fetcher's context ended: the result is its, not the URL's
}

func newAIAFetcher(dial dialFunc, log *logrus.Entry, m *metrics) *aiaFetcher {
	return &aiaFetcher{dial: dial, log: log, metrics: m, cache: make(map[aiaKey]aiaEntry), calls: make(map[aiaKey]*aiaCall)}
}

// incompleteChainError is a server chain without its intermediate:
// fetch_intermediates is off (url is the leaf's AIA URL, err the
// verification error), or fetching from url failed (fetchErr).
type incompleteChainError struct {
	url      string
	off      bool  // fetch_intermediates is off
	fetchErr error // the fetch failed
	err      error // the verification error of the chain as sent
}

func (e *incompleteChainError) Error() string {
	if e.fetchErr != nil {
		return fmt.Sprintf("the server sent no intermediate certificate and fetching it from %s failed: %v", e.url, e.fetchErr)
	}
	return fmt.Sprintf("the server sent no intermediate certificate (its leaf names %s): %v", e.url, e.err)
}

func (e *incompleteChainError) Unwrap() error { return e.err }

// issuerURL is the leaf's first http:// CA Issuers URL, "" when it has none.
func issuerURL(leaf *x509.Certificate) string {
	for _, u := range leaf.IssuingCertificateURL {
		if strings.HasPrefix(strings.ToLower(u), "http://") {
			return u
		}
	}
	return ""
}

// verifyConnection is the VerifyConnection of one handshake towards t
// with fetch_intermediates (see handshakeTargetAuth, which sets it with
// InsecureSkipVerify: this function is then the whole verification). It
// verifies like crypto/tls does — the chain as sent, against roots, for
// name (which may be an IP literal, the SNI cannot carry it, so it is not
// read from the ConnectionState) — and only when that fails with an
// unknown authority for a leaf with an AIA URL, completes the chain and
// verifies it again with the same roots and name. local reports that the
// server was dialled at a loopback address.
func (f *aiaFetcher) verifyConnection(ctx context.Context, t target, roots *x509.CertPool, name string, local bool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		certs := cs.PeerCertificates
		if len(certs) == 0 || name == "" {
			return errors.New("tls: no certificate or no name to verify")
		}
		if cs.DidResume {
			// The session was made by a handshake this function
			// verified, under the rule's template (its roots, its
			// session cache) and for this name (the cache's key):
			// check only what can have changed since, as crypto/tls
			// does for a resumed session it verified itself.
			if time.Now().After(certs[0].NotAfter) {
				return verificationError(certs, x509.CertificateInvalidError{Cert: certs[0], Reason: x509.Expired})
			}
			return verificationError(certs, certs[0].VerifyHostname(name))
		}
		opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := certs[0].Verify(opts)
		var ua x509.UnknownAuthorityError
		u := issuerURL(certs[0])
		if err == nil || !errors.As(err, &ua) || u == "" {
			return verificationError(certs, err)
		}
		fetched, cached, ferr := f.fetch(ctx, u, t, local)
		if ferr != nil {
			return verificationError(certs, &incompleteChainError{url: u, fetchErr: ferr, err: err})
		}
		for _, c := range fetched {
			opts.Intermediates.AddCert(c)
		}
		if _, err := certs[0].Verify(opts); err != nil {
			return verificationError(certs, err)
		}
		if !cached && f.log != nil {
			f.log.WithFields(logrus.Fields{logfield.Host: t.host, logfield.Rule: t.rule.Name, "aia_url": u}).
				Warnf("server %s (%s) sends an incomplete certificate chain (no intermediate); completed it from its AIA URL %s. Its operator should serve the full chain (nginx: the intermediate after the leaf in ssl_certificate)", t.host, t.addr, u)
		}
		return nil
	}
}

// verificationError wraps err the way crypto/tls wraps its own
// verification failures, so classify and check read it the same.
func verificationError(certs []*x509.Certificate, err error) error {
	if err == nil {
		return nil
	}
	return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
}

// fetch returns the CA certificates at u, from the cache or fetched for t
// (through its parent); cached reports that this caller did not fetch
// (a cache hit, or another handshake's fetch it waited for). Concurrent
// fetches of one key are coalesced: the first fetches, the others wait
// for its result (as long as their own ctx lets them), so N handshakes
// with one incomplete chain cost one GET.
func (f *aiaFetcher) fetch(ctx context.Context, u string, t target, local bool) (certs []*x509.Certificate, cached bool, err error) {
	parent := ruleParent(t.rule)
	k := aiaKey{url: u, local: local}
	if parent != nil {
		k.parent = parent.URL + "\x00" + parent.Authorization
	}
	for {
		now := time.Now()
		f.mu.Lock()
		if e, ok := f.cache[k]; ok && now.Before(e.expires) {
			f.mu.Unlock()
			f.count("cached")
			return e.certs, true, e.err
		}
		c, busy := f.calls[k]
		if !busy {
			c = &aiaCall{done: make(chan struct{})}
			f.calls[k] = c
		}
		f.mu.Unlock()
		if !busy {
			certs, err := f.fetchLeader(ctx, k, parent, c, now)
			return certs, false, err
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if c.ended {
			continue // the fetcher gave up for its own reasons: fetch again
		}
		f.count("cached")
		return c.certs, true, c.err
	}
}

// fetchLeader fetches k for fetch, publishes the result in c and caches
// it: certificates until the first expires or aiaTTL passes, failures for
// aiaNegativeTTL. Not cached: errAIALocal (decided without the network; a
// server on the network naming local URLs must not fill the cache) and a
// fetch cut short by the caller's own context.
func (f *aiaFetcher) fetchLeader(ctx context.Context, k aiaKey, parent *policy.ParentProxy, c *aiaCall, now time.Time) ([]*x509.Certificate, error) {
	start := time.Now()
	certs, err := f.get(ctx, k.url, parent, k.local)
	e := aiaEntry{certs: certs, err: err, expires: now.Add(aiaNegativeTTL)}
	if err == nil {
		f.count("fetched")
		e.expires = now.Add(aiaTTL)
		for _, cert := range certs {
			if cert.NotAfter.Before(e.expires) {
				e.expires = cert.NotAfter
			}
		}
		if f.log != nil {
			f.log.WithFields(logrus.Fields{"aia_url": k.url, logfield.DurationMS: time.Since(start).Milliseconds()}).Debug("fetched intermediate")
		}
	} else {
		f.count("failed")
	}
	c.certs, c.err, c.ended = certs, err, err != nil && ctx.Err() != nil
	f.mu.Lock()
	delete(f.calls, k)
	if !c.ended && !errors.Is(err, errAIALocal) {
		f.storeLocked(k, e, now)
	}
	f.mu.Unlock()
	close(c.done)
	return certs, err
}

func (f *aiaFetcher) count(result string) {
	if f.metrics != nil {
		f.metrics.aiaFetches.WithLabelValues(result).Inc()
	}
}

// storeLocked caches e for k, first dropping expired entries, then (when
// still full) an arbitrary one: the cache is bounded.
func (f *aiaFetcher) storeLocked(k aiaKey, e aiaEntry, now time.Time) {
	if len(f.cache) >= aiaCacheSize {
		for old, v := range f.cache {
			if now.After(v.expires) {
				delete(f.cache, old)
			}
		}
		for old := range f.cache {
			if len(f.cache) < aiaCacheSize {
				break
			}
			delete(f.cache, old)
		}
	}
	f.cache[k] = e
}

// errAIALocal refuses an AIA URL on a local address for a remote server.
var errAIALocal = errors.New("the AIA URL points at a loopback, link-local or unspecified address, which tlsbridge only fetches from for a server on loopback itself")

// localAddr reports addresses a certificate from the network must not
// make tlsbridge request: loopback, link-local (cloud metadata at
// 169.254.169.254) and unspecified.
func localAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()
}

// get fetches u: a GET bounded by aiaTimeout and aiaMaxBytes, through
// parent when set.
func (f *aiaFetcher) get(ctx context.Context, u string, parent *policy.ParentProxy, local bool) ([]*x509.Certificate, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("bad AIA URL %q", u)
	}
	host := pu.Hostname()
	if ip, err := netip.ParseAddr(host); (err == nil && localAddr(ip) || strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")) && !local {
		return nil, errAIALocal
	}
	// At most aiaTimeout, and at most half the handshake's time left, so
	// a fetch that never ends still leaves time to say so (a 502 naming
	// the URL, not a bare 504).
	timeout := aiaTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d)/2 < timeout {
		timeout = time.Until(d) / 2
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		Proxy:             proxyFunc(parent),
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := f.dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Names resolve here (without a parent): the address
			// reached decides.
			if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok && parent == nil && !local {
				if ip, ok := netip.AddrFromSlice(ra.IP); ok && localAddr(ip) {
					c.Close()
					return nil, errAIALocal
				}
			}
			return c, nil
		},
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	setParentAuth(req, parent)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, aiaMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > aiaMaxBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes, not a certificate", u, aiaMaxBytes)
	}
	return parseIssuers(body)
}

// parseIssuers parses what a CA Issuers URL serves: one DER certificate
// (RFC 5280 4.2.2.1), a DER PKCS #7 certs-only bundle (.p7c), or PEM
// (which some servers use). Only CA certificates are kept.
func parseIssuers(body []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	switch {
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("-----BEGIN")):
		for block, rest := pem.Decode(body); block != nil; block, rest = pem.Decode(rest) {
			if block.Type == "CERTIFICATE" {
				if c, err := x509.ParseCertificate(block.Bytes); err == nil {
					certs = append(certs, c)
				}
			}
		}
	default:
		if c, err := x509.ParseCertificate(body); err == nil {
			certs = []*x509.Certificate{c}
		} else if cs, perr := parsePKCS7Certs(body); perr == nil {
			certs = cs
		} else {
			return nil, fmt.Errorf("not a DER certificate (%v) nor a PKCS #7 bundle (%v)", err, perr)
		}
	}
	var cas []*x509.Certificate
	for _, c := range certs {
		if c.IsCA && c.BasicConstraintsValid {
			cas = append(cas, c)
		}
	}
	if len(cas) == 0 {
		return nil, errors.New("no CA certificate in the answer")
	}
	return cas, nil
}

// oidSignedData is PKCS #7 signedData (RFC 2315 section 9.1).
var oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}

// parsePKCS7Certs reads the certificates of a PKCS #7 SignedData
// (ContentInfo{signedData, [0] SignedData{version, digestAlgorithms,
// contentInfo, [0] IMPLICIT certificates, ...}}), the .p7c format; nothing
// else of it is used.
func parsePKCS7Certs(der []byte) ([]*x509.Certificate, error) {
	var ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(der, &ci); err != nil || len(rest) > 0 {
		return nil, errors.New("not a PKCS #7 ContentInfo")
	}
	if !ci.Type.Equal(oidSignedData) {
		return nil, fmt.Errorf("PKCS #7 content type %v is not signedData", ci.Type)
	}
	var sd asn1.RawValue
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || sd.Tag != asn1.TagSequence {
		return nil, errors.New("PKCS #7 signedData is not a SEQUENCE")
	}
	for rest := sd.Bytes; len(rest) > 0; {
		var field asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &field); err != nil {
			return nil, fmt.Errorf("PKCS #7 signedData: %w", err)
		}
		if field.Class == asn1.ClassContextSpecific && field.Tag == 0 {
			return x509.ParseCertificates(field.Bytes)
		}
	}
	return nil, errors.New("PKCS #7 bundle without certificates")
}

// incompleteChainVerdict explains a chain without its intermediate.
func (e *upstreamError) incompleteChainVerdict(ic *incompleteChainError) verdict {
	v := verdict{reason: reasonIncompleteChain, status: http.StatusBadGateway}
	if ic.off {
		v.cause = fmt.Sprintf("The server %s sent its certificate without the intermediate that links it to a trusted root (its certificate names the intermediate at %s): %v.", e.server(), ic.url, ic.err)
		v.fix = fmt.Sprintf("The server's operator should send the full chain (nginx: the intermediate after the leaf in ssl_certificate); until then, let tlsbridge fetch it: %s.", e.setUpstream("fetch_intermediates", "true", true))
		return v
	}
	v.cause = fmt.Sprintf("The server %s sent its certificate without the intermediate, and fetching it from %s failed: %v.", e.server(), ic.url, ic.fetchErr)
	v.fix = fmt.Sprintf("The server's operator should send the full chain (nginx: the intermediate after the leaf in ssl_certificate); or add the intermediate's PEM file to the trusted files: %s.", e.addCAFile())
	return v
}
