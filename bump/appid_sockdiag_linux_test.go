package bump

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel is the other end of a sockDiag's socket, playing the kernel:
// it reads requests and writes replies when the test says.
type fakeKernel struct {
	t  *testing.T
	fd int
}

// newFakeSockDiag is a sockDiag whose socket is one end of a datagram
// socketpair (answers time out after 50 ms) and the fake kernel at the
// other end.
func newFakeSockDiag(t *testing.T) (*sockDiag, *fakeKernel) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := setRecvTimeout(fds[0], 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := setRecvTimeout(fds[1], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	sd := &sockDiag{fd: fds[0], buf: make([]byte, 8192)}
	t.Cleanup(func() { sd.close(); unix.Close(fds[1]) })
	return sd, &fakeKernel{t: t, fd: fds[1]}
}

// request reads the next request.
func (k *fakeKernel) request() []byte {
	k.t.Helper()
	b := make([]byte, 512)
	n, err := unix.Read(k.fd, b)
	if err != nil {
		k.t.Errorf("fake kernel: reading a request: %v", err)
		return nil
	}
	return b[:n]
}

// reply answers req (its seq, family and socket id) with an inet_diag_msg
// naming inode, owned by uid 1000.
func (k *fakeKernel) reply(req []byte, inode uint32) {
	k.t.Helper()
	const hdr = 16
	b := make([]byte, hdr+72)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	copy(b[8:12], req[8:12]) // seq
	m := b[hdr:]
	m[0], m[1] = req[hdr], 1 // family; TCP_ESTABLISHED
	copy(m[4:52], req[hdr+8:hdr+8+48])
	ne.PutUint32(m[64:], 1000)
	ne.PutUint32(m[68:], inode)
	if _, err := unix.Write(k.fd, b); err != nil {
		k.t.Errorf("fake kernel: writing a reply: %v", err)
	}
}

// TestSockDiagIgnoresLateReplies: the kernel answers a request after it
// timed out; the next lookup, for another connection, gets its own
// answer, not the late one (which would credit the connection to the
// process of the one before). The late reply comes before the next request
// (drained), or after it (skipped: another seq), or a reply with the right
// seq names another socket (skipped).
func TestSockDiagIgnoresLateReplies(t *testing.T) {
	proxy := netip.MustParseAddrPort("127.0.0.1:3128")
	a, b := netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:40002")
	const inodeA, inodeB = 111, 222
	for _, tc := range []string{"late-reply-before-next-request", "late-reply-after-next-request", "same-seq-other-socket", "dual-stack-app"} {
		t.Run(tc, func(t *testing.T) {
			sd, k := newFakeSockDiag(t)
			if tc == "dual-stack-app" {
				// Asked as AF_INET, the kernel answers for the app's
				// AF_INET6 socket with ::ffff:127.0.0.1 (Java does this).
				go func() {
					req := k.request()
					v6 := append([]byte(nil), req...)
					v6[16] = unix.AF_INET6
					src, dst := a.Addr().As16(), proxy.Addr().As16() // ::ffff:127.0.0.1
					copy(v6[16+8+4:], src[:])
					copy(v6[16+8+20:], dst[:])
					k.reply(v6, inodeA)
				}()
				if ino, _, err := sd.inode(a, proxy); err != nil || ino != inodeA {
					t.Fatalf("inode(%s) = %d, %v; want %d from the AF_INET6 answer", a, ino, err, inodeA)
				}
				return
			}
			if tc == "same-seq-other-socket" {
				done := make(chan struct{})
				go func() {
					defer close(done)
					req := k.request()
					other := append([]byte(nil), req...)
					copy(other[16+8:], sockDiagRequest(0, a, proxy)[16+8:16+8+36]) // a's socket id, b's seq
					k.reply(other, inodeA)
					k.reply(req, inodeB)
				}()
				ino, _, err := sd.inode(b, proxy)
				<-done
				if err != nil || ino != inodeB {
					t.Fatalf("inode(%s) = %d, %v; want %d", b, ino, err, inodeB)
				}
				return
			}
			// a's request times out: the kernel has not answered yet.
			if ino, _, err := sd.inode(a, proxy); err == nil {
				t.Fatalf("inode(%s) = %d with no answer, want a timeout", a, ino)
			}
			reqA := k.request()
			if tc == "late-reply-before-next-request" {
				k.reply(reqA, inodeA)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				reqB := k.request()
				if tc == "late-reply-after-next-request" {
					k.reply(reqA, inodeA)
				}
				k.reply(reqB, inodeB)
			}()
			ino, uid, err := sd.inode(b, proxy)
			<-done
			if err != nil || ino != inodeB || uid != 1000 {
				t.Fatalf("inode(%s) = %d, uid %d, %v; want %d, uid 1000 (%d is %s's, answered late)", b, ino, uid, err, inodeB, inodeA, a)
			}
		})
	}
}

// TestSockDiagMatchesEachSocket: one sockDiag, asked in turn about several
// sockets of this process, IPv4 and IPv6, names each one's own inode.
func TestSockDiagMatchesEachSocket(t *testing.T) {
	sd, err := newSockDiag()
	if err != nil {
		t.Skipf("no sock_diag here: %v", err)
	}
	defer sd.close()
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		defer ln.Close()
		for i := range 4 {
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			k, ok := connKey(s)
			if !ok {
				t.Fatalf("%s: connKey(%v) not a local TCP connection", network, s.RemoteAddr())
			}
			ino, uid, err := sd.inode(k[0], k[1])
			if err != nil {
				t.Fatalf("%s #%d: %v", network, i, err)
			}
			if got, want := fmt.Sprintf("socket:[%d]", ino), socketLink(t, c); got != want || uid != os.Getuid() {
				t.Fatalf("%s #%d: inode %s uid %d, want %s uid %d", network, i, got, uid, want, os.Getuid())
			}
		}
	}
}

// socketLink is what /proc/self/fd shows for c's fd: "socket:[inode]".
func socketLink(t *testing.T, c net.Conn) string {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var link string
	var lerr error
	if err := rc.Control(func(fd uintptr) { link, lerr = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)) }); err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return link
}

// TestLookupKeepsOneSocket: the resolver's lookups share one sock_diag
// socket; after it fails (here: its peer is gone), the next lookup opens
// another and finds the process again.
func TestLookupKeepsOneSocket(t *testing.T) {
	_, s := tcpPair(t)
	k, _ := connKey(s)
	conns, hint := [][2]netip.AddrPort{k}, []int{os.Getpid()}

	var st lookupState
	defer st.close()
	lookup := func(what string) {
		t.Helper()
		procs, found := lookupSocketProcess(&st, conns, hint)
		if !found[0] || procs[0].pid != os.Getpid() {
			t.Fatalf("%s: found %v, %+v; want pid %d", what, found[0], procs[0], os.Getpid())
		}
	}
	lookup("first lookup")
	if st.sd == nil {
		t.Fatal("no socket kept after the first lookup")
	}
	first := st.sd
	lookup("second lookup")
	if st.sd != first {
		t.Fatal("the second lookup opened another socket")
	}

	// The socket breaks: a datagram socket whose peer is closed.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	netlinkFD := first.fd
	defer unix.Close(netlinkFD)
	first.fd = fds[0]
	if _, found := lookupSocketProcess(&st, conns, hint); found[0] {
		t.Fatal("found the process over a broken socket")
	}
	if st.sd != nil {
		t.Fatal("the broken socket was kept")
	}
	lookup("lookup after the failure")
	if st.sd == nil || st.sd == first {
		t.Fatal("no new socket after the failure")
	}
}

// TestFDScanIsCapped: the walk of a process's fds stops after its limit,
// so a socket beyond it is not found; within the limit it is.
func TestFDScanIsCapped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	link := socketLink(t, c)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	if got := fdsLinkedToMax(os.Getpid(), map[string]int{link: 7}, len(ents)+8); len(got) != 1 || got[0] != 7 {
		t.Fatalf("within the cap: found %v, want [7]", got)
	}
	if got := fdsLinkedToMax(os.Getpid(), map[string]int{link: 7}, 0); len(got) != 0 {
		t.Fatalf("cap 0: found %v, want nothing", got)
	}
}
