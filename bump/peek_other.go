//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bump

import "net"

// peekSocket cannot look at sockets here; callers fall back to a probe read.
func peekSocket(net.Conn) socketState { return socketUnknown }
