// Package freeport hands tests a loopback address that nothing listens on
// yet, for a listener the code under test must open itself.
//
// The usual trick, listening on port 0 and closing, returns a port from the
// kernel's ephemeral range, which any outgoing connection on the machine
// (another test package's client, say) may take as its local port before
// the code under test binds it: "address already in use", one run in a
// hundred. Addr picks below that range instead, where only explicit binds
// go, and never hands out the same port twice in one process.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The examples (examples/lib.sh free_port) take 20000-31999; unit tests
// stay below them, so the two never race for one port.
const (
	low  = 10000
	high = 20000
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Addr returns "127.0.0.1:port" for a port that was free a moment ago and
// lies outside the ephemeral range.
func Addr(t testing.TB) string {
	t.Helper()
	hi := min(high, ephemeralLow())
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		p := low + rand.IntN(max(hi-low, 1))
		if handed[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		handed[p] = true
		return ln.Addr().String()
	}
	t.Fatalf("freeport: no free loopback port in %d-%d", low, hi-1)
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux;
// 32768 elsewhere, below both the BSD and the Windows ranges).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= low {
		return 32768
	}
	return n
}
