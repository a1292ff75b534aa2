//go:build !windows

package bump

import "syscall"

// The socket errors classify and accept tell apart, per OS (Winsock has
// codes of its own: errno_windows.go).
var (
	errConnRefused  error = syscall.ECONNREFUSED
	errConnReset    error = syscall.ECONNRESET
	errTooManyFiles error = syscall.EMFILE
)
