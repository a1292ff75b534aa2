//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bump

import (
	"testing"
	"time"
)

// peekSocket tells an idle socket from one with bytes waiting and one the
// peer closed, and leaves the waiting bytes for the next Read.
func TestPeekSocket(t *testing.T) {
	c, peer := tcpPair(t)

	// eventually waits for the peer's bytes or FIN to reach c.
	eventually := func(want socketState) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for got := peekSocket(c); got != want; got = peekSocket(c) {
			if time.Now().After(deadline) {
				t.Fatalf("peekSocket = %d, want %d", got, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if got := peekSocket(c); got != socketIdle {
		t.Fatalf("idle socket: peekSocket = %d, want %d (idle)", got, socketIdle)
	}
	peer.Write([]byte("x"))
	eventually(socketReadable)
	var b [1]byte
	if n, err := c.Read(b[:]); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("Read after peek = %d %q %v, want the peeked byte", n, b[:n], err)
	}
	if got := peekSocket(c); got != socketIdle {
		t.Fatalf("after reading: peekSocket = %d, want %d (idle)", got, socketIdle)
	}
	peer.Close()
	eventually(socketClosed)
	c.Close()
	if got := peekSocket(c); got != socketClosed {
		t.Fatalf("closed here: peekSocket = %d, want %d (closed)", got, socketClosed)
	}
}
