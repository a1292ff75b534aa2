//go:build !linux

package bump

import (
	"net/netip"
	"time"
)

// processLookup: tlsbridge cannot find the process behind a socket here,
// so apps are known by their proxy user or their address.
const processLookup = false

// lookupState is empty: there is nothing to keep.
type lookupState struct{}

func (*lookupState) close() {}

func lookupSocketProcess(_ *lookupState, conns [][2]netip.AddrPort, _ []int) ([]procInfo, []bool) {
	return make([]procInfo, len(conns)), make([]bool, len(conns))
}

// processCPU is not needed where nothing is looked up.
func processCPU() time.Duration { return 0 }
