package bump

import (
	"net"
	"net/netip"
	"os/user"
	"testing"
	"time"
)

// addrConn is a net.Conn that only has addresses: what note reads.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// loopbackConn is a client connection from 127.0.0.1:port to the proxy.
func loopbackConn(port int) net.Conn {
	return addrConn{
		local:  net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:3128")),
		remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))),
	}
}

// fakeLookup finds every connection in process 42 ("fake", uid 4242),
// after release is closed (nil: at once).
func fakeLookup(release chan struct{}) lookupFunc {
	return func(_ *lookupState, conns [][2]netip.AddrPort, _ []int) ([]procInfo, []bool) {
		if release != nil {
			<-release
		}
		procs, found := make([]procInfo, len(conns)), make([]bool, len(conns))
		for i := range conns {
			procs[i], found[i] = procInfo{pid: 42, uid: 4242, comm: "fake", exe: "/bin/fake"}, true
		}
		return procs, found
	}
}

// identity waits up to 5 s for the identity of l's app.
func identity(t *testing.T, r *appResolver, l *appLookup, fallback appID) appID {
	t.Helper()
	got := make(chan appID, 1)
	r.identify(l, fallback, func(id appID) { got <- id })
	select {
	case id := <-got:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("no identity within 5 s")
		return appID{}
	}
}

// TestAppResolverAfterClose: a connection noted after the resolver closed
// is not queued (it would wait forever) and is known by its fallback at
// once; one noted before close, still queued or being looked up, gets an
// identity too.
func TestAppResolverAfterClose(t *testing.T) {
	fallback := appID{Kind: appAddress, Name: "127.0.0.1", Addr: "127.0.0.1"}
	release := make(chan struct{})
	r := newAppResolver(fakeLookup(release))
	r.users[4242] = "fake-user"
	busy, queued := r.note(loopbackConn(40001)), r.note(loopbackConn(40002))
	if busy == nil || queued == nil {
		t.Fatal("a connection noted before close was not queued")
	}
	closed := make(chan struct{})
	go func() { r.close(); close(closed) }()
	time.Sleep(20 * time.Millisecond) // close waits for the lookup
	close(release)
	<-closed
	for i, l := range []*appLookup{busy, queued} {
		if id := identity(t, r, l, fallback); id.Kind != appProcess && id != fallback {
			t.Errorf("lookup %d noted before close: identity %+v, want the process or the fallback", i, id)
		}
	}

	l := r.note(loopbackConn(40003))
	if l != nil {
		t.Fatal("note after close queued a lookup, want nil (the fallback)")
	}
	called := false
	r.identify(l, fallback, func(id appID) {
		called = true
		if id != fallback {
			t.Errorf("identity after close %+v, want the fallback %+v", id, fallback)
		}
	})
	if !called {
		t.Fatal("identify after close did not call back at once")
	}
	r.close() // idempotent
}

// TestAppResolverCountsUserLookups: the time spent naming a process's user
// (a passwd lookup, cached per uid) counts against the resolver's CPU
// budget, as the /proc walk does.
func TestAppResolverCountsUserLookups(t *testing.T) {
	const slow = 50 * time.Millisecond
	r := newAppResolver(fakeLookup(nil))
	defer r.close()
	r.lookupUser = func(uid string) (*user.User, error) {
		time.Sleep(slow)
		return &user.User{Uid: uid, Username: "slow-user"}, nil
	}
	id := identity(t, r, r.note(loopbackConn(40001)), appID{})
	if id.Kind != appProcess || id.User != "slow-user" {
		t.Fatalf("identity %+v, want process 42 of slow-user", id)
	}
	if spent := time.Duration(r.spent.Load()); spent < slow {
		t.Fatalf("resolver spent %v, want at least the user lookup's %v", spent, slow)
	}
}
