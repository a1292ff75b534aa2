//go:build openssl && cgo

package bump

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/openssl"
)

// legacyEngine is OpenSSL (internal/openssl) for the app-facing handshakes
// of legacy apps; see engine.go for which.
type legacyEngine struct {
	ctx    *openssl.Ctx
	served []uint16
}

// newLegacyEngine makes the engine with the same suites crypto/tls offers
// apps below TLS 1.2 (legacyClientCipherSuites), those this libssl has.
func newLegacyEngine() (*legacyEngine, error) {
	ctx, err := openssl.NewServerCtx(openssl.ServerConfig{CipherSuites: legacyClientCipherSuites})
	if err != nil {
		return nil, fmt.Errorf("legacy TLS engine: %w", err)
	}
	return &legacyEngine{ctx: ctx, served: ctx.CipherSuites()}, nil
}

func (e *legacyEngine) suites() []uint16 { return e.served }

// setLifetime applies [limits] session_lifetime to the sessions made from
// now on; 0 turns resumption off in the engine (SetPolicy applies it
// before the new snapshot serves a connection).
func (e *legacyEngine) setLifetime(d time.Duration) {
	e.ctx.SetResumption(d > 0)
	if d > 0 {
		e.ctx.SetSessionLifetime(d)
	}
}

// setCacheSize applies [limits] session_cache_size: a smaller bound drops
// the least recently used sessions at the next new one.
func (e *legacyEngine) setCacheSize(n int) { e.ctx.SetSessionCacheSize(n) }

// sessions is the number of sessions cached for resumption by ID, and
// how many were dropped for room so far.
func (e *legacyEngine) sessions() (held, evicted int) { return e.ctx.Sessions(), e.ctx.Evicted() }

// LegacyEngine names the legacy TLS engine built in: the libssl in use.
func LegacyEngine() string { return openssl.Version() }

// legacyConn is the engine's connection as the relay sees it.
type legacyConn struct{ *openssl.Conn }

// versionSuite is what splitsRecords asks of an app connection.
func (c legacyConn) versionSuite() (uint16, uint16) {
	st := c.State()
	return st.Version, st.CipherSuite
}

// handshake serves the app's handshake on c (which replays the hello).
func (e *legacyEngine) handshake(ctx context.Context, c net.Conn, cfg legacyConfig) (appTLS, appState, error) {
	oc, err := e.ctx.Server(c, openssl.ConnConfig{
		MinVersion:     cfg.minVersion,
		MaxVersion:     min(cfg.maxVersion, tls.VersionTLS12),
		Certificate:    cfg.cert,
		NextProtos:     cfg.protos,
		SessionContext: cfg.sessionContext,
	})
	if err != nil {
		return nil, appState{}, err
	}
	if err := oc.Handshake(ctx); err != nil {
		oc.Close()
		err = legacyError(err)
		return nil, appState{}, err
	}
	st := oc.State()
	return legacyConn{oc}, appState{version: st.Version, cipher: st.CipherSuite, alpn: st.NegotiatedProtocol,
		resumed: st.DidResume, engine: "openssl"}, nil
}

// legacyError gives the classifier what crypto/tls would have said: a
// received alert as crypto/tls reports one (an OpenSSL 3 app at its default
// security level aborts with internal_error), no shared cipher as
// errUnservable, a version refused as errClientVersion.
func legacyError(err error) error {
	var oe *openssl.Error
	if errors.As(err, &oe) {
		if code, ok := oe.RemoteAlert(); ok {
			return fmt.Errorf("%w (%w)", &net.OpError{Op: "remote error", Err: tls.AlertError(code)}, err)
		}
	}
	switch {
	case errors.Is(err, openssl.ErrNoSharedCipher):
		return fmt.Errorf("%w (%w)", errUnservable, err)
	case errors.Is(err, openssl.ErrProtocolVersion):
		return fmt.Errorf("%w (%w)", errClientVersion, err)
	}
	return err
}
