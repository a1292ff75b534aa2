package ca

import (
	"container/list"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheCapacity is the number of leaves a Cache keeps when
// CacheConfig.Capacity is zero. A leaf with its parsed form takes a few
// kilobytes, so the default costs tens of megabytes at most.
const DefaultCacheCapacity = 10000

// renewBefore is how long before its NotAfter a cached leaf is replaced, so a
// handshake never gets a leaf that expires mid-connection or is already
// expired on a client whose clock runs ahead. It is capped at a quarter of
// the leaf validity so short test validities still get cache hits.
const renewBefore = time.Hour

// probeName is the name of the Probe certificates: ".invalid" is reserved
// (RFC 2606) and can never be a real host.
const probeName = "probe.invalid"

// CacheConfig configures a Cache. The zero value is usable.
type CacheConfig struct {
	// Capacity is the maximum number of cached leaves; each name (or name
	// list, for GetMulti) and key type is one entry. If zero,
	// DefaultCacheCapacity. The least recently used leaf is evicted first.
	Capacity int
	// Validity is the leaf lifetime. If zero, DefaultLeafValidity.
	Validity time.Duration
	// Logger, if non-nil, receives debug messages about hits, misses and
	// mints (Printf-style; adapt it to a logger at Debug level). It never
	// receives keys.
	Logger func(format string, args ...any)
	// OnMint, if non-nil, is called with the time each successful leaf
	// mint took (one signature; Probe certificates excluded), for a
	// metrics histogram. It runs on the minting goroutine, outside the
	// cache lock, and must be fast and safe for concurrent use.
	OnMint func(time.Duration)
}

// CacheStats is a snapshot of a Cache's counters.
type CacheStats struct {
	Hits   uint64 // Get/GetMulti calls answered from the cache
	Misses uint64 // calls that were not: they minted a leaf or waited for a concurrent mint of the same one
	Mints  uint64 // leaves signed (Probe certificates excluded)
	Len    int    // leaves currently cached
}

// Cache mints leaf certificates on demand and keeps the most recently used
// ones. It is safe for concurrent use; create it with NewCache.
//
// Every leaf of one key type shares one private key, generated in NewCache
// and held only in memory (see the package documentation for why), so a
// miss costs one signature, not a key generation. With an RSA CA that
// allows it, ECDSA leaves are signed by an in-memory ECDSA intermediate
// (see ECDSAIssuer), so that signature is an ECDSA one.
type Cache struct {
	validity time.Duration
	capacity int
	logf     func(format string, args ...any) // nil: silent
	onMint   func(time.Duration)              // nil: not timed
	now      func() time.Time                 // a clock hook for tests; time.Now otherwise

	// Set in NewCache, read-only afterwards.
	keys   map[KeyType]crypto.Signer
	probes map[KeyType]*tls.Certificate

	// sign is the CA in use; SetAuthority replaces it (under mu, with
	// the entries it signed).
	sign atomic.Pointer[signing]

	mu       sync.Mutex
	lru      *list.List // of *cacheEntry, most recently used first
	entries  map[cacheKey]*list.Element
	inflight map[cacheKey]*mintCall // concurrent misses wait on these
	stats    CacheStats             // Len is computed in Stats
	closed   bool
}

// signing is what signs a Cache's leaves: the CA, and for ECDSA leaves
// the in-memory intermediate if the CA allows one.
type signing struct {
	a           *Authority
	ecdsaIssuer ECDSAIssuer
	inter       *issuer // signs KeyECDSAP256 leaves; nil: the CA does
}

// newSigning decides how a signs ECDSA leaves at now, making the
// intermediate if it may.
func newSigning(a *Authority, now time.Time) (*signing, error) {
	s := &signing{a: a, ecdsaIssuer: ecdsaIssuerFor(a.Cert, now)}
	if s.ecdsaIssuer == ECDSAIssuerIntermediate {
		inter, err := newIntermediate(a, now)
		if err != nil {
			return nil, err
		}
		s.inter = inter
	}
	return s, nil
}

type cacheKey struct {
	names string // normalized names joined with ","
	kt    KeyType
}

type cacheEntry struct {
	key   cacheKey
	cert  *tls.Certificate
	renew time.Time // when the leaf stops being served from the cache
}

// mintCall is one in-progress mint; callers missing the same key wait for
// done instead of minting again (like certmagic's certLoadWaitChans).
type mintCall struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewCache returns a Cache whose leaves are signed by a, or for ECDSA
// leaves by an intermediate it signs with a (see ECDSAIssuer). It
// generates the process-wide leaf keys (one ECDSA P-256, one RSA-2048,
// together about 50 ms), the intermediate if any, and the Probe
// certificates. It panics if a is nil.
func NewCache(a *Authority, cfg CacheConfig) (*Cache, error) {
	if a == nil {
		panic("ca: NewCache with nil Authority")
	}
	c := &Cache{
		validity: cfg.Validity,
		capacity: cfg.Capacity,
		logf:     cfg.Logger,
		onMint:   cfg.OnMint,
		now:      time.Now,
		keys:     make(map[KeyType]crypto.Signer, 2),
		probes:   make(map[KeyType]*tls.Certificate, 2),
		lru:      list.New(),
		entries:  make(map[cacheKey]*list.Element),
		inflight: make(map[cacheKey]*mintCall),
	}
	if c.validity <= 0 {
		c.validity = DefaultLeafValidity
	}
	if c.capacity <= 0 {
		c.capacity = DefaultCacheCapacity
	}
	for _, kt := range KeyTypes() {
		key, err := generateKey(kt)
		if err != nil {
			return nil, fmt.Errorf("new certificate cache: %s leaf key: %w", kt, err)
		}
		c.keys[kt] = key
	}
	sg, err := newSigning(a, c.now())
	if err != nil {
		return nil, fmt.Errorf("new certificate cache: %w", err)
	}
	c.sign.Store(sg)
	for _, kt := range KeyTypes() {
		p, err := newProbe(c.keys[kt], c.now())
		if err != nil {
			return nil, fmt.Errorf("new certificate cache: %s probe certificate: %w", kt, err)
		}
		c.probes[kt] = p
	}
	return c, nil
}

// Authority returns the CA the Cache signs with now.
func (c *Cache) Authority() *Authority { return c.sign.Load().a }

// ECDSAIssuer reports how the Cache signs ECDSA leaves, as decided in
// NewCache or SetAuthority.
func (c *Cache) ECDSAIssuer() ECDSAIssuer { return c.sign.Load().ecdsaIssuer }

// Intermediate returns the in-memory ECDSA intermediate that signs the
// Cache's ECDSA leaves, or nil if the CA signs them itself (see
// ECDSAIssuer). It is shared and must not be modified.
func (c *Cache) Intermediate() *x509.Certificate {
	if in := c.sign.Load().inter; in != nil {
		return in.cert
	}
	return nil
}

// SetAuthority makes a sign every leaf from now on: a rotated sub-CA
// (`tlsbridge ca import -force`, then a reload). It drops every cached
// leaf, so the next handshake for each host gets one from a; connections
// already made keep the leaf they have. A mint that was running for the
// previous CA completes for its callers but is not cached. It panics if a
// is nil.
func (c *Cache) SetAuthority(a *Authority) error {
	if a == nil {
		panic("ca: SetAuthority with nil Authority")
	}
	sg, err := newSigning(a, c.now())
	if err != nil {
		return fmt.Errorf("switch certificate cache to CA %q: %w", a.Cert.Subject.CommonName, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sign.Store(sg)
	c.lru.Init()
	clear(c.entries)
	// New misses must not wait for a leaf of the previous CA.
	c.inflight = make(map[cacheKey]*mintCall)
	return nil
}

// Get returns a leaf for the host name or IP literal name with a key of type
// kt, minting it on a miss. name is normalized first (case, trailing dot,
// port, IDNA), so "API.Example.com." and "api.example.com:443" share one
// entry. The returned certificate has Leaf set and Certificate = [leaf DER,
// issuer DER], the issuer being the Intermediate for an ECDSA leaf if there
// is one, else the CA; it is shared and must not be modified.
func (c *Cache) Get(name string, kt KeyType) (*tls.Certificate, error) {
	if !kt.valid() {
		return nil, fmt.Errorf("leaf for %q: %v: %w", name, kt, ErrUnknownKeyType)
	}
	h, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	// nil names: a single-name miss builds []string{h} itself, so a hit
	// allocates nothing here.
	return c.get(cacheKey{names: h, kt: kt}, nil)
}

// GetMulti is like Get but returns one leaf valid for all names (the first
// is its common name), cached under the whole normalized list. The proxy's
// own certificate uses it for its listen host, localhost, 127.0.0.1 and ::1.
func (c *Cache) GetMulti(names []string, kt KeyType) (*tls.Certificate, error) {
	if !kt.valid() {
		return nil, fmt.Errorf("leaf for %q: %v: %w", names, kt, ErrUnknownKeyType)
	}
	norm, err := normalizeNames(names)
	if err != nil {
		return nil, err
	}
	return c.get(cacheKey{names: strings.Join(norm, ","), kt: kt}, norm)
}

// get returns the leaf for k, minting it for norm (or k.names if norm is
// nil) on a miss, with concurrent misses for k waiting on one mint.
func (c *Cache) get(k cacheKey, norm []string) (*tls.Certificate, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("leaf for %q: %w", k.names, ErrCacheClosed)
	}
	if cert := c.lookupLocked(k); cert != nil {
		c.stats.Hits++
		c.mu.Unlock()
		if c.logf != nil {
			c.logf("ca: cache hit for %s (%s)", k.names, k.kt)
		}
		return cert, nil
	}
	c.stats.Misses++
	if call, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		if c.logf != nil {
			c.logf("ca: cache miss for %s (%s), waiting for a concurrent mint", k.names, k.kt)
		}
		<-call.done
		return call.cert, call.err
	}
	call := &mintCall{done: make(chan struct{})}
	c.inflight[k] = call
	c.mu.Unlock()

	if c.logf != nil {
		c.logf("ca: cache miss for %s (%s), minting", k.names, k.kt)
	}
	defer close(call.done)
	if norm == nil {
		norm = []string{k.names}
	}
	start := time.Now()
	sg := c.sign.Load()
	call.cert, call.err = c.mint(sg, norm, k.kt)
	if call.err == nil && c.onMint != nil {
		c.onMint(time.Since(start))
	}

	c.mu.Lock()
	if c.inflight[k] == call { // else SetAuthority replaced the map
		delete(c.inflight, k)
	}
	if call.err == nil {
		c.stats.Mints++
		if !c.closed && c.sign.Load() == sg {
			c.addLocked(k, call.cert)
		}
	}
	c.mu.Unlock()
	return call.cert, call.err
}

// lookupLocked returns the cached leaf for k, or nil if there is none or it
// is due for renewal (in which case the entry is dropped). c.mu must be held.
func (c *Cache) lookupLocked(k cacheKey) *tls.Certificate {
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.renew) {
		c.removeLocked(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.cert
}

// addLocked caches cert under k and evicts the least recently used entries
// beyond capacity. c.mu must be held.
func (c *Cache) addLocked(k cacheKey, cert *tls.Certificate) {
	if el, ok := c.entries[k]; ok {
		c.removeLocked(el)
	}
	margin := min(renewBefore, c.validity/4)
	e := &cacheEntry{key: k, cert: cert, renew: cert.Leaf.NotAfter.Add(-margin)}
	c.entries[k] = c.lru.PushFront(e)
	for c.lru.Len() > c.capacity {
		c.removeLocked(c.lru.Back())
	}
}

// removeLocked drops one entry. c.mu must be held.
func (c *Cache) removeLocked(el *list.Element) {
	c.lru.Remove(el)
	delete(c.entries, el.Value.(*cacheEntry).key)
}

// mint signs a leaf for normalized names with the process-wide key of kt,
// by the intermediate for an ECDSA key if there is one, else by the CA.
func (c *Cache) mint(sg *signing, names []string, kt KeyType) (*tls.Certificate, error) {
	key := c.keys[kt]
	iss := sg.a.root()
	if kt == KeyECDSAP256 && sg.inter != nil {
		iss = *sg.inter
	}
	leaf, der, err := sg.a.issue(iss, names, key.Public(), c.now(), c.validity)
	if err != nil {
		return nil, fmt.Errorf("mint leaf for %q: %w", strings.Join(names, ","), err)
	}
	return &tls.Certificate{
		// The issuer goes second. An intermediate must: clients know only
		// the CA and build the chain from what the server sends. The CA
		// (when it is the issuer) lets clients that want the whole chain,
		// and tools that print it, get it; clients that trust it ignore
		// it. With an intermediate the CA stays out: every client that
		// verifies has it already, and it would add its ~830 bytes to
		// each handshake.
		// An imported sub-CA (the issuer, never with an intermediate)
		// also sends its own issuers up to, not including, the root:
		// apps trust only that root.
		Certificate: append([][]byte{der, iss.cert.Raw}, sg.a.served()...),
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// newProbe makes a Probe certificate: self-signed by the leaf key rather
// than by the CA, because it is never served (SupportsCertificate looks only
// at the leaf's key and names), and so it works with a CA whose name
// constraints or expiry would refuse "probe.invalid".
func newProbe(key crypto.Signer, now time.Time) (*tls.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: probeName},
		DNSNames:     []string{probeName},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(DefaultLeafValidity),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // as in issue
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Probe returns a certificate with the process-wide leaf key of type kt,
// made once for "probe.invalid" (self-signed, not by the CA), so a GetCertificate callback can ask
// ClientHelloInfo.SupportsCertificate which key type a client accepts
// without minting anything. It returns nil for an unknown key type. The
// result is shared and must not be modified or served.
//
// SupportsCertificate also checks the leaf against the client's SNI, which
// the probe never matches; SupportsKeyType and KeyTypeFor handle that, so
// prefer them over calling SupportsCertificate with a probe directly.
func (c *Cache) Probe(kt KeyType) *tls.Certificate {
	return c.probes[kt]
}

// SupportsKeyType reports whether the client that sent hello can complete a
// handshake with a leaf of type kt (protocol version, cipher suites,
// signature algorithms and curves), as ClientHelloInfo.SupportsCertificate
// does, minus the server-name check: the leaf that would be minted for the
// name always matches it.
func (c *Cache) SupportsKeyType(hello *tls.ClientHelloInfo, kt KeyType) error {
	p := c.probes[kt]
	if p == nil {
		return fmt.Errorf("probe %v: %w", kt, ErrUnknownKeyType)
	}
	h := *hello // a shallow copy keeps the server's config for the version check
	h.ServerName = ""
	return h.SupportsCertificate(p)
}

// KeyTypeFor implements leaf_key = "auto": KeyECDSAP256 if the client that
// sent hello supports it (smaller, faster handshakes), else KeyRSA2048, which
// every client supports.
func (c *Cache) KeyTypeFor(hello *tls.ClientHelloInfo) KeyType {
	if c.SupportsKeyType(hello, KeyECDSAP256) == nil {
		return KeyECDSAP256
	}
	return KeyRSA2048
}

// Stats returns a snapshot of the cache counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Len = c.lru.Len()
	return s
}

// Close drops every cached leaf; later Get and GetMulti calls fail with
// ErrCacheClosed (calls already minting complete normally). The cache runs
// no background goroutines, so there is nothing else to stop. Close is
// idempotent and always returns nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.lru.Init()
	clear(c.entries)
	return nil
}
