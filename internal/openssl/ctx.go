//go:build openssl && cgo

package openssl

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Defaults of ServerConfig.
const (
	// DefaultSessionCacheSize bounds the server session cache: at about
	// 0.5 KiB a session (no client certificates are kept), 10 MiB at most.
	DefaultSessionCacheSize = 20000
	// DefaultSessionLifetime is how long a session can be resumed, by ID
	// or ticket, and the ticket's lifetime hint: SChannel keeps client
	// sessions 10 hours, Java 24; one hour bounds what a stolen session
	// could do and still spares a busy app all but one RSA decryption an
	// hour.
	DefaultSessionLifetime = time.Hour
)

// ServerConfig is what the app-facing connections of one Ctx share.
type ServerConfig struct {
	// CipherSuites are IANA IDs in the server's order of preference,
	// translated to OpenSSL's names (IDs OpenSSL lacks are dropped). They
	// are run at @SECLEVEL=0: this engine exists for apps OpenSSL's
	// default level refuses.
	CipherSuites []uint16
	// Groups are the ECDHE groups in OpenSSL's syntax. If empty,
	// "P-256:X25519:P-384".
	Groups string
	// SessionCacheSize bounds the server session cache (sessions resumed
	// by ID). If 0, DefaultSessionCacheSize.
	SessionCacheSize int
	// SessionLifetime is how long a session can be resumed, by ID or by
	// ticket (whose lifetime hint it is). If 0, DefaultSessionLifetime.
	// OpenSSL counts whole seconds.
	SessionLifetime time.Duration
}

// Ctx holds what connections share: an SSL_CTX (cipher list, session
// cache, ticket keys) and the certificates already handed to OpenSSL.
type Ctx struct {
	ctx    *C.SSL_CTX
	server bool
	certs  twoGen[*tls.Certificate, *Cert]
	keys   twoGen[crypto.PrivateKey, *pkey]
}

// NewServerCtx makes the context of app-facing connections.
func NewServerCtx(cfg ServerConfig) (*Ctx, error) {
	c, err := newCtx(true)
	if err != nil {
		return nil, err
	}
	names, err := c.cipherNames(cfg.CipherSuites)
	if err != nil {
		return nil, err
	}
	if err := c.setCipherList(strings.Join(names, ":") + ":@SECLEVEL=0"); err != nil {
		return nil, err
	}
	groups := cfg.Groups
	if groups == "" {
		groups = "P-256:X25519:P-384"
	}
	cg := C.CString(groups)
	defer C.free(unsafe.Pointer(cg))
	if C.tb_ctx_groups(c.ctx, cg) != 1 {
		return nil, fmt.Errorf("openssl: groups %q refused", groups)
	}
	size, life := cfg.SessionCacheSize, cfg.SessionLifetime
	if size <= 0 {
		size = DefaultSessionCacheSize
	}
	if life <= 0 {
		life = DefaultSessionLifetime
	}
	C.tb_ctx_set_session_cache(c.ctx, C.long(cacheBound(size)), C.long(max(1, int64(life/time.Second))))
	C.tb_set_alpn_cb(c.ctx)
	return c, nil
}

func newCtx(server bool) (*Ctx, error) {
	method := C.TLS_client_method()
	if server {
		method = C.TLS_server_method()
	}
	ctx := C.SSL_CTX_new(method)
	if ctx == nil {
		return nil, errors.New("openssl: SSL_CTX_new failed")
	}
	c := &Ctx{ctx: ctx, server: server}
	c.certs.max, c.keys.max = 1024, 16
	runtime.AddCleanup(c, func(ctx *C.SSL_CTX) { C.SSL_CTX_free(ctx) }, ctx)
	srv := C.int(0)
	if server {
		srv = 1
	}
	if C.tb_ctx_options(ctx, srv) != 1 {
		return nil, errors.New("openssl: minimum TLS 1.0 refused")
	}
	return c, nil
}

func (c *Ctx) setCipherList(list string) error {
	cl := C.CString(list)
	defer C.free(unsafe.Pointer(cl))
	if C.SSL_CTX_set_cipher_list(c.ctx, cl) != 1 {
		return fmt.Errorf("openssl: cipher list %q refused", list)
	}
	return nil
}

// cipherNames translates IANA suite IDs to OpenSSL's names.
func (c *Ctx) cipherNames(ids []uint16) ([]string, error) {
	s := C.tb_new_ssl(c.ctx, 1)
	if s == nil {
		return nil, errors.New("openssl: SSL_new failed")
	}
	defer C.SSL_free(s)
	var names []string
	for _, id := range ids {
		if n := C.tb_cipher_name(s, C.int(id)); n != nil {
			names = append(names, C.GoString(n))
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("openssl: none of the cipher suites %x is known to OpenSSL", ids)
	}
	return names, nil
}

// CipherSuites are the IANA IDs of the suites this Ctx serves: those of
// ServerConfig.CipherSuites that this libssl has (Debian's has no 3DES and
// no RC4, so an app offering only those is better served by crypto/tls).
func (c *Ctx) CipherSuites() []uint16 {
	var ids [256]C.ushort
	n := C.tb_ctx_cipher_ids(c.ctx, &ids[0], C.int(len(ids)))
	var out []uint16
	for _, id := range ids[:n] {
		if id>>8 != 0x13 { // TLS 1.3's, always listed; this engine stops at 1.2
			out = append(out, uint16(id))
		}
	}
	return out
}

// SetSessionLifetime sets how long the sessions made from now on can be
// resumed, by ID or ticket (the ticket's lifetime hint); sessions made
// before keep theirs. OpenSSL counts whole seconds. It may run while
// connections do: the value is one word OpenSSL reads when it makes a
// session.
func (c *Ctx) SetSessionLifetime(d time.Duration) {
	C.SSL_CTX_set_timeout(c.ctx, C.long(max(1, int64(d/time.Second))))
}

// SetResumption turns session resumption on or off for the connections
// made from now on (OpenSSL copies the ticket option into each SSL when it
// is made). Off, no session is resumed, by ID or ticket, and none is
// offered for later: no session ID, no ticket, nothing cached. The
// sessions cached before stay, unused, until they expire or resumption is
// on again.
func (c *Ctx) SetResumption(on bool) {
	var v C.int
	if on {
		v = 1
	}
	C.tb_ctx_resumption(c.ctx, v)
}

// SetSessionCacheSize bounds the server session cache from now on (n <= 0:
// DefaultSessionCacheSize). A smaller bound takes effect at the next new
// session: OpenSSL then drops the least recently used sessions down to
// it. Like SetSessionLifetime it may run while connections do.
func (c *Ctx) SetSessionCacheSize(n int) {
	if n <= 0 {
		n = DefaultSessionCacheSize
	}
	C.tb_ctx_set_cache_size(c.ctx, C.long(cacheBound(n)))
}

// cacheBound is OpenSSL's cache size for a cache of n sessions: OpenSSL
// 3.0 counts the session being added before it evicts, so a cache size of
// n keeps n-1 (TestSetSessionCacheSize).
func cacheBound(n int) int { return n + 1 }

// Sessions is the number of sessions in the server session cache.
func (c *Ctx) Sessions() int { return int(C.tb_ctx_sessions(c.ctx)) }

// Evicted is the number of sessions dropped so far to make room for new
// ones, before they expired: a cache too small for its apps.
func (c *Ctx) Evicted() int { return int(C.tb_ctx_cache_full(c.ctx)) }

// Cert is a certificate chain and its key as OpenSSL objects. Ctx.cert
// makes one per *tls.Certificate and keeps it while the Go side does;
// OpenSSL counts its own references, so a Cert freed by the garbage
// collector leaves connections that use it intact.
type Cert struct {
	leaf  *C.X509
	chain []*C.X509
	key   *pkey
}

type pkey struct{ p *C.EVP_PKEY }

// cert returns the OpenSSL form of tc, made once.
func (c *Ctx) cert(tc *tls.Certificate) (*Cert, error) {
	if oc, ok := c.certs.get(tc); ok {
		return oc, nil
	}
	if len(tc.Certificate) == 0 {
		return nil, errors.New("openssl: certificate without a chain")
	}
	k, err := c.key(tc.PrivateKey)
	if err != nil {
		return nil, err
	}
	oc := &Cert{key: k}
	for i, der := range tc.Certificate {
		x := C.tb_d2i_x509(cbytes(der), C.long(len(der)))
		if x == nil {
			return nil, fmt.Errorf("openssl: certificate %d of the chain does not parse", i)
		}
		if i == 0 {
			oc.leaf = x
		} else {
			oc.chain = append(oc.chain, x)
		}
	}
	all := append([]*C.X509{oc.leaf}, oc.chain...)
	runtime.AddCleanup(oc, func(xs []*C.X509) {
		for _, x := range xs {
			C.X509_free(x)
		}
	}, all)
	c.certs.put(tc, oc)
	return oc, nil
}

// key returns the OpenSSL form of a leaf key, made once per key.
func (c *Ctx) key(k crypto.PrivateKey) (*pkey, error) {
	switch k.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey: // comparable: a map key
	default:
		return nil, fmt.Errorf("openssl: leaf key type %T not supported", k)
	}
	if p, ok := c.keys.get(k); ok {
		return p, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("openssl: marshal leaf key: %w", err)
	}
	ek := C.tb_d2i_key(cbytes(der), C.long(len(der)))
	clear(der)
	if ek == nil {
		return nil, errors.New("openssl: leaf key does not parse")
	}
	p := &pkey{p: ek}
	runtime.AddCleanup(p, func(ek *C.EVP_PKEY) { C.EVP_PKEY_free(ek) }, ek)
	c.keys.put(k, p)
	return p, nil
}

// twoGen is a bounded map that forgets the least recently used half: when
// cur holds max entries it becomes old and a new cur starts; a hit in old
// moves to cur. Values are freed by the garbage collector (AddCleanup),
// never by eviction, so a value in use stays valid.
type twoGen[K comparable, V any] struct {
	mu       sync.Mutex
	max      int
	cur, old map[K]V
}

func (g *twoGen[K, V]) get(k K) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.old[k]
	if ok {
		g.putLocked(k, v)
	}
	return v, ok
}

func (g *twoGen[K, V]) put(k K, v V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.putLocked(k, v)
}

func (g *twoGen[K, V]) putLocked(k K, v V) {
	if g.cur == nil || len(g.cur) >= g.max {
		g.old, g.cur = g.cur, make(map[K]V)
	}
	g.cur[k] = v
}
