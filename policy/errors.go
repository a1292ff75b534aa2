package policy

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Problems found in a config file are [*KeyError] values
// (joined with [errors.Join]) that wrap one of these, so callers can test for
// a class of problem with [errors.Is] without reading messages.
var (
	// ErrSyntax means the file is not valid TOML or a value has the wrong
	// TOML type.
	ErrSyntax = errors.New("invalid TOML")
	// ErrUnknownKey means the file sets a key the config does not have,
	// usually a typo.
	ErrUnknownKey = errors.New("unknown key")
	// ErrTLSVersion means a version string is not 1.0, 1.1, 1.2 or 1.3, or
	// a min/max pair is inverted.
	ErrTLSVersion = errors.New("bad TLS version")
	// ErrAction means an action is not auto, bump, tunnel or deny.
	ErrAction = errors.New("bad action")
	// ErrNotLoopback means a listen address is reachable from other hosts
	// while allow_clients is empty (an open proxy).
	ErrNotLoopback = errors.New("listen address is not loopback")
	// ErrInvalid is every other bad value: a malformed address, CIDR, port,
	// host glob, enum value or CA file.
	ErrInvalid = errors.New("invalid value")
)

// KeyError is one problem in a config file, tied to the dotted key that
// holds it ("rule[2].upstream.min_tls").
type KeyError struct {
	File string // config file path as given to Load or Parse; "" when parsing bytes without a path
	Line int    // 1-based line, or 0 when the TOML decoder does not report one
	Key  string // dotted key with array indexes, or "" for whole-file problems
	Msg  string // what is wrong, the accepted values and the fix
	Err  error  // sentinel class, one of the Err* values of this package
}

// Error formats the problem as "file:line: key: msg", leaving out the parts
// that are unknown.
func (e *KeyError) Error() string {
	var b []byte
	if e.File != "" {
		b = append(b, e.File...)
		if e.Line > 0 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(e.Line), 10)
		}
		b = append(b, ": "...)
	} else if e.Line > 0 {
		b = fmt.Appendf(b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b = append(b, e.Key...)
		b = append(b, ": "...)
	}
	b = append(b, e.Msg...)
	return string(b)
}

// Unwrap returns the sentinel class of the problem.
func (e *KeyError) Unwrap() error { return e.Err }
