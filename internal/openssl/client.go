//go:build openssl && cgo

package openssl

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"
)

// ClientConfig is the client side, for tools that must behave like a
// legacy app (the load tool's session-ID resumption) and for tests.
type ClientConfig struct {
	// RootsFile is a PEM file of the CAs to verify servers against.
	RootsFile string
	// CipherList is in OpenSSL's syntax, e.g. "AES128-SHA:@SECLEVEL=0".
	// If empty, OpenSSL's default.
	CipherList string
	// MinVersion and MaxVersion bound the versions (crypto/tls constants).
	MinVersion, MaxVersion uint16
	// NoTickets resumes by session ID only, as Windows XP and Java 6 do.
	NoTickets bool
}

// NewClientCtx makes the context of client connections.
func NewClientCtx(cfg ClientConfig) (*Ctx, error) {
	c, err := newCtx(false)
	if err != nil {
		return nil, err
	}
	if cfg.CipherList != "" {
		if err := c.setCipherList(cfg.CipherList); err != nil {
			return nil, err
		}
	}
	if C.tb_ctx_versions(c.ctx, C.int(cfg.MinVersion), C.int(cfg.MaxVersion)) != 1 {
		return nil, fmt.Errorf("openssl: versions %#x-%#x refused", cfg.MinVersion, cfg.MaxVersion)
	}
	if cfg.NoTickets {
		C.SSL_CTX_set_options(c.ctx, C.SSL_OP_NO_TICKET)
	}
	if cfg.RootsFile == "" {
		return nil, errors.New("openssl: a client needs RootsFile (servers are always verified)")
	}
	f := C.CString(cfg.RootsFile)
	defer C.free(unsafe.Pointer(f))
	if C.SSL_CTX_load_verify_locations(c.ctx, f, nil) != 1 {
		return nil, fmt.Errorf("openssl: CA file %s does not load", cfg.RootsFile)
	}
	C.SSL_CTX_set_verify(c.ctx, C.SSL_VERIFY_PEER, nil)
	return c, nil
}

// Session is a TLS session a client can resume.
type Session struct{ s *C.SSL_SESSION }

// Client starts the client side of a TLS connection to serverName (SNI
// and the name verified), resuming sess when it is not nil.
func (c *Ctx) Client(conn net.Conn, serverName string, sess *Session) (*Conn, error) {
	if c.server {
		return nil, errors.New("openssl: Client on a server Ctx")
	}
	tc := &Conn{conn: conn, ssl: C.tb_new_ssl(c.ctx, 0)}
	if tc.ssl == nil {
		return nil, errors.New("openssl: SSL_new failed")
	}
	name := C.CString(serverName)
	defer C.free(unsafe.Pointer(name))
	ok := C.tb_set_host(tc.ssl, name) == 1
	if ok && sess != nil {
		ok = C.tb_set_session(tc.ssl, sess.s) == 1
		runtime.KeepAlive(sess)
	}
	if !ok {
		tc.free()
		return nil, fmt.Errorf("openssl: configure client connection to %q", serverName)
	}
	return tc, nil
}

// Session returns the connection's session, to resume later; nil before
// the handshake finished.
func (c *Conn) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ssl == nil || c.state.Version == 0 {
		return nil
	}
	s := C.tb_get1_session(c.ssl)
	if s == nil {
		return nil
	}
	sess := &Session{s: s}
	runtime.AddCleanup(sess, func(s *C.SSL_SESSION) { C.SSL_SESSION_free(s) }, s)
	return sess
}

// ID is the session's ID (empty for a ticket-only session).
func (s *Session) ID() []byte {
	var n C.uint
	p := C.SSL_SESSION_get_id(s.s, &n)
	defer runtime.KeepAlive(s)
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

// LifetimeHint is the server's ticket lifetime hint; 0 without a ticket.
func (s *Session) LifetimeHint() time.Duration {
	defer runtime.KeepAlive(s)
	return time.Duration(C.SSL_SESSION_get_ticket_lifetime_hint(s.s)) * time.Second
}
