//go:build openssl && cgo

package openssl

/*
#cgo LDFLAGS: -lssl -lcrypto
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

func init() {
	if C.tb_init() < 0 {
		panic("openssl: no SSL ex_data index") // at start, not on a connection
	}
}

// Version is the libssl this binary runs with, as it names itself
// ("OpenSSL 3.0.22 25 Aug 2026").
func Version() string { return C.GoString(C.OpenSSL_version(C.OPENSSL_VERSION)) }

// sslError is what OpenSSL said about a failed operation.
func sslError(op string, sslerr C.int, ecode C.ulong) error {
	if ecode != 0 {
		var buf [256]C.char
		C.ERR_error_string_n(ecode, &buf[0], C.size_t(len(buf)))
		return &Error{Op: op, Reason: C.GoString(&buf[0]), Code: uint64(ecode)}
	}
	return &Error{Op: op, Reason: fmt.Sprintf("SSL_get_error %d", int(sslerr))}
}

// Error is a failure OpenSSL reported, with its own text (error:0A0000C1:SSL
// routines::no shared cipher), so logs read like squid's and nginx's.
type Error struct {
	Op     string // handshake, read, write
	Reason string
	Code   uint64 // ERR_get_error's packed code, 0 if none
}

func (e *Error) Error() string { return "openssl " + e.Op + ": " + e.Reason }

// RemoteAlert is the TLS alert the peer sent, when that ended the
// operation (OpenSSL reports a received alert as reason 1000 + its code).
func (e *Error) RemoteAlert() (uint8, bool) {
	r := int(C.tb_reason(C.ulong(e.Code)))
	if e.Code == 0 || r < C.SSL_AD_REASON_OFFSET || r > C.SSL_AD_REASON_OFFSET+255 {
		return 0, false
	}
	return uint8(r - C.SSL_AD_REASON_OFFSET), true
}

// Is makes errors.Is(err, ErrNoSharedCipher) and its kin work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNoSharedCipher:
		return C.tb_reason(C.ulong(e.Code)) == C.SSL_R_NO_SHARED_CIPHER
	case ErrProtocolVersion:
		r := C.tb_reason(C.ulong(e.Code))
		return r == C.SSL_R_UNSUPPORTED_PROTOCOL || r == C.SSL_R_WRONG_VERSION_NUMBER || r == C.SSL_R_VERSION_TOO_LOW
	}
	return false
}

// Sentinels for the classifier: errors.Is(err, ErrNoSharedCipher).
var (
	ErrNoSharedCipher  = errors.New("openssl: no shared cipher")
	ErrProtocolVersion = errors.New("openssl: unsupported protocol version")
)

// cbytes is p as a C pointer, nil for an empty p.
func cbytes(p []byte) unsafe.Pointer {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Pointer(&p[0])
}
