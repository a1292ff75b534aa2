//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bump

import (
	"errors"
	"net"
	"syscall"
)

// peekSocket looks at c's socket without reading from it and without
// waiting: MSG_PEEK leaves any bytes for the next Read, MSG_DONTWAIT returns
// at once. One recvfrom, where a blocking probe read would cost two deadline
// updates, a timer and a millisecond of latency.
func peekSocket(c net.Conn) socketState {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return socketUnknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return socketUnknown
	}
	st := socketUnknown
	var b [1]byte
	cerr := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			st = socketIdle
		case err != nil:
			st = socketClosed // reset, or any other socket error
		case n == 0:
			st = socketClosed // the peer's FIN
		default:
			st = socketReadable
		}
		return true // never wait for readiness
	})
	if cerr != nil {
		return socketClosed // closed on our side
	}
	return st
}
