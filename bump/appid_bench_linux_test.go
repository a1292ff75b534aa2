package bump

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
)

// BenchmarkAppLookup is the resolver's cost per app connection: the
// sock_diag query and the walk of the app's fd directory (this process,
// holding 2×16 loopback sockets and the test's other fds), per connection,
// in batches of 1 and 16 (a burst shares one walk).
func BenchmarkAppLookup(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var conns [][2]netip.AddrPort
	for range 16 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		k, _ := connKey(s)
		conns = append(conns, k)
	}
	var st lookupState
	defer st.close()
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			for b.Loop() {
				_, found := lookupSocketProcess(&st, conns[:n], []int{os.Getpid()})
				if !found[0] {
					b.Fatal("not found")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
		})
	}
}
