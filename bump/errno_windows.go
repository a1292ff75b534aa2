package bump

import "syscall"

// The socket errors classify and accept tell apart, as Winsock reports
// them (winerror.h): Go's syscall.ECONNREFUSED and friends are invented
// values on Windows that no socket call returns, and syscall names only
// WSAECONNRESET.
var (
	errConnRefused  error = syscall.Errno(10061) // WSAECONNREFUSED
	errConnReset    error = syscall.WSAECONNRESET
	errTooManyFiles error = syscall.Errno(10024) // WSAEMFILE
)
