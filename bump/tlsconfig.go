package bump

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tlsbridge/tlsbridge/policy"
)

// legacyClientCipherSuites is what the app-facing side accepts for TLS 1.0–1.2
// (TLS 1.3 suites are not configurable in crypto/tls and are always on).
//
// It deliberately goes beyond Go's defaults, because the apps tlsbridge exists
// for cannot be changed:
//   - ECDHE *_CBC_SHA suites: the only forward-secret suites TLS 1.0/1.1
//     clients have (Android 4, Java 7, .NET 4.0, OpenSSL 1.0.x).
//   - TLS_RSA_* (RSA key exchange): removed from Go's default list in Go 1.22
//     (GODEBUG tlsrsakex); Java 6, Windows XP/Server 2003 and many embedded
//     stacks offer nothing else.
//   - 3DES: removed from the defaults in Go 1.23 (GODEBUG tls3des); Windows
//     XP's SChannel has no AES at all. Only apps whose ClientHello tops out
//     below TLS 1.2 are offered it (see appFacingConfig): every TLS 1.2 stack
//     has AES, and a 64-bit block cipher there is only SWEET32 exposure
//     (CVE-2016-2183) that scanners such as testssl rightly flag.
//
// Listing suites explicitly in Config.CipherSuites is what re-enables them;
// the GODEBUG switches only affect the defaults. The weakness these suites
// carry stays on the loopback leg between the app and tlsbridge; the
// upstream leg uses upstreamCipherSuites, which this list starts with.
var legacyClientCipherSuites = slices.Concat(tls12AppCipherSuites, tripleDESSuites)

// tls12AppCipherSuites is legacyClientCipherSuites without 3DES: what an app
// that offers TLS 1.2 or later is offered.
var tls12AppCipherSuites = slices.Concat(upstreamCipherSuites, []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
})

// tripleDESSuites are the 3DES suites, for apps below TLS 1.2 only.
var tripleDESSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// upstreamCipherSuites is what tlsbridge offers real servers for TLS 1.2:
// forward-secret suites only, the same set Go offers by default, written out
// so that a future change of Go's defaults does not change what we send.
var upstreamCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// newAppFacingBase returns the template every app-facing tls.Config is cloned
// from. Session ticket keys are set here (ticketKeys) so that clones share
// them and a reconnecting app can resume instead of paying for a full
// handshake (an RSA-2048 decryption is 0.7 ms in Go).
func newAppFacingBase() *tls.Config {
	return &tls.Config{
		// TLS 1.0 and 1.1 are the reason tlsbridge exists; the per-rule
		// client.min_tls narrows this. Since Go 1.22 an unset MinVersion means
		// TLS 1.2 for servers (GODEBUG tls10server), so it is always set.
		MinVersion:   tls.VersionTLS10, //nolint:gosec // legacy apps on loopback are the product's purpose; tested in server_test.go (TLS 1.0 clients throughout)
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: legacyClientCipherSuites,
		// What the app may use for ECDHE. The order here is not a
		// preference: since Go 1.24 a server walks Go's own default order
		// (X25519 first) and only drops the curves missing here; see
		// clientHello.serve, which narrows TLS 1.0-1.2 apps to P-256.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
	}
}

// ticketKeys rotates the session ticket keys of the app-facing template:
// a new key every half of [limits] session_lifetime, the previous one kept
// to open the tickets it sealed, so a ticket resumes for at most the
// lifetime, and a key read out of memory opens no session older than
// that. crypto/tls rotates on its own only when no keys are set; tlsbridge
// sets them so that the per-connection clones share them (a clone copies
// the keys of the moment, under the template's lock).
type ticketKeys struct {
	base   *tls.Config
	mu     sync.Mutex
	cur    [32]byte
	period time.Duration // 0: resumption off, no rotation
	timer  *time.Timer   // nil while period is 0, and after stop
}

// newTicketKeys sets base's first key.
func newTicketKeys(base *tls.Config) (*ticketKeys, error) {
	k := &ticketKeys{base: base}
	if err := k.rotateLocked(false); err != nil {
		return nil, err
	}
	return k, nil
}

// rotateLocked seals new tickets with a fresh key; keep says whether the
// current one still opens tickets (until the next rotation). k.mu is held.
func (k *ticketKeys) rotateLocked(keep bool) error {
	var next [32]byte
	if _, err := rand.Read(next[:]); err != nil {
		return fmt.Errorf("session ticket key: %w", err)
	}
	keys := [][32]byte{next}
	if keep {
		keys = append(keys, k.cur)
	}
	k.base.SetSessionTicketKeys(keys)
	k.cur = next
	return nil
}

// setLifetime rotates every lifetime/2 from now on; a changed lifetime
// also drops every key so far (a ticket sealed under the old rule, or
// before resumption was turned off and on again, never resumes).
func (k *ticketKeys) setLifetime(lifetime time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	period := lifetime / 2
	if period == k.period { // the timer runs exactly while period > 0
		return nil
	}
	if err := k.rotateLocked(false); err != nil {
		return err
	}
	k.stopLocked()
	k.period = period
	if period > 0 {
		k.armLocked()
	}
	return nil
}

// armLocked schedules the next rotation; a timer stopped or replaced
// meanwhile does nothing when it fires. k.mu is held.
func (k *ticketKeys) armLocked() {
	var t *time.Timer
	t = time.AfterFunc(k.period, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.timer != t {
			return
		}
		_ = k.rotateLocked(true) // a failed read of crypto/rand keeps the keys one period more
		k.armLocked()
	})
	k.timer = t
}

// rotate is one scheduled rotation: a fresh key, the current one kept.
func (k *ticketKeys) rotate() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rotateLocked(true)
}

func (k *ticketKeys) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopLocked()
}

func (k *ticketKeys) stopLocked() {
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
}

// appFacingConfig returns a per-connection config for the app's side. It
// takes 3DES out of the suites for an app that offers TLS 1.2 or later
// (see legacyClientCipherSuites) once its ClientHello is read; the apps
// tlsbridge exists for, below TLS 1.2, keep this config as it is.
func appFacingConfig(base *tls.Config, c policy.ClientTLS, lim policy.Limits, alpn []string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	cfg := base.Clone()
	cfg.SessionTicketsDisabled = lim.SessionLifetime == 0
	cfg.MinVersion = c.MinVersion
	cfg.MaxVersion = c.MaxVersion
	cfg.NextProtos = alpn
	cfg.GetCertificate = getCert
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		if _, maxOffered := offeredRange(hi.SupportedVersions); maxOffered < tls.VersionTLS12 {
			return nil, nil // nil: go on with cfg, 3DES included
		}
		// Cloned here, not when cfg is built: the caller may still set
		// fields (clientHello.serve sets CurvePreferences). The clone keeps
		// the session ticket keys, so resumption still works.
		narrowed := cfg.Clone()
		narrowed.GetConfigForClient = nil
		narrowed.CipherSuites = tls12AppCipherSuites
		return narrowed, nil
	}
	return cfg
}

// newUpstreamBase builds the server-facing config template of one rule.
// Verification stays on unless the rule says verify = false.
//
// A client_cert is part of the template, so a reload (a new snapshot, the
// files read again) gives new connections a renewed certificate while
// connections made before keep the one they presented.
func newUpstreamBase(u policy.UpstreamTLS) *tls.Config {
	var certs []tls.Certificate
	if u.ClientCert != nil {
		certs = []tls.Certificate{*u.ClientCert}
	}
	return &tls.Config{
		Certificates:       certs,
		MinVersion:         u.MinVersion,
		MaxVersion:         u.MaxVersion,
		CipherSuites:       upstreamCipherSuites,
		RootCAs:            u.RootCAs,
		InsecureSkipVerify: !u.Verify, //nolint:gosec // only when a rule sets verify = false; warned at startup, tested in server_test.go
		// Resumed upstream sessions turn a reconnecting legacy app's
		// upstream handshake into an abbreviated one.
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
}

// offeredRange returns the lowest and highest version in a ClientHello's list.
func offeredRange(versions []uint16) (lo, hi uint16) {
	for i, v := range versions {
		if isGREASE(v) {
			continue
		}
		if i == 0 || lo == 0 || v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// isGREASE reports RFC 8701 placeholder values that clients put in lists.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// versionName names a TLS version the way people write it.
func versionName(v uint16) string {
	switch v {
	case 0:
		return "-"
	case 0x0300:
		return "SSL3.0"
	}
	return "TLS" + policy.TLSVersionName(v)
}

// cipherName names a negotiated cipher suite, "-" when none.
func cipherName(id uint16) string {
	if id == 0 {
		return "-"
	}
	return tls.CipherSuiteName(id)
}

// sharesSuite reports whether the client offered any suite the app-facing
// side accepts (TLS 1.3 suites always count).
func sharesSuite(offered []uint16) bool {
	for _, o := range offered {
		if o>>8 == 0x13 {
			return true
		}
		for _, s := range legacyClientCipherSuites {
			if o == s {
				return true
			}
		}
	}
	return false
}
