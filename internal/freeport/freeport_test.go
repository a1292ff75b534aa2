package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Addr's ports are bindable, outside the ephemeral range, and distinct.
func TestAddr(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		a := Addr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if p < low || p >= ephemeralLow() {
			t.Fatalf("port %d outside %d-%d", p, low, ephemeralLow()-1)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("cannot bind the handed-out %s: %v", a, err)
		}
		ln.Close()
	}
}
