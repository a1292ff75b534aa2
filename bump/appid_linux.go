package bump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lookupState is what the resolver keeps between batches: the sock_diag
// socket, opened for the first lookup and again after one failed (an
// answer such as "no such socket" is not a failure).
type lookupState struct{ sd *sockDiag }

// close closes the socket; the next lookup opens another.
func (st *lookupState) close() {
	if st.sd != nil {
		st.sd.close()
		st.sd = nil
	}
}

// lookupSocketProcess finds the processes that own the TCP sockets whose
// local end is conns[i][0] and whose peer is conns[i][1] (tlsbridge's end):
// each socket's inode and owner from the kernel (sock_diag, over st's
// socket), then the processes holding "socket:[inode]" among their fds,
// the PIDs in hint first (an app's next connection is usually in the same
// process), the rest of /proc only for what is still missing. One pass
// serves the whole batch, so a burst of connections costs one walk of the
// fd directories.
func lookupSocketProcess(st *lookupState, conns [][2]netip.AddrPort, hint []int) ([]procInfo, []bool) {
	procs, found := make([]procInfo, len(conns)), make([]bool, len(conns))
	want := make(map[string]int, len(conns)) // "socket:[inode]" → index
	uids := make([]int, len(conns))
	if st.sd == nil {
		sd, err := newSockDiag()
		if err != nil {
			return procs, found
		}
		st.sd = sd
	}
	for i, c := range conns {
		inode, uid, err := st.sd.inode(c[0], c[1])
		if st.sd.err != nil {
			st.close()
			break
		}
		if err == nil {
			want["socket:["+strconv.FormatUint(uint64(inode), 10)+"]"], uids[i] = i, uid
		}
	}
	scan := func(pid int) {
		for _, i := range fdsLinkedTo(pid, want) {
			procs[i], found[i] = procOf(pid, uids[i]), true
		}
	}
	for _, pid := range hint {
		if len(want) == 0 {
			return procs, found
		}
		scan(pid)
	}
	if len(want) == 0 {
		return procs, found
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return procs, found
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && !slices.Contains(hint, pid) {
			pids = append(pids, pid)
		}
	}
	// Newest first: a client is usually younger than most of the host.
	slices.Sort(pids)
	slices.Reverse(pids)
	for _, pid := range pids {
		if len(want) == 0 {
			break
		}
		scan(pid)
	}
	return procs, found
}

// processLookup: this platform can find the process behind a socket.
const processLookup = true

var errNoProcess = errors.New("the socket has no owner any more")

// sockDiag asks the kernel (NETLINK_SOCK_DIAG, what ss uses) for the
// inode and owner uid of one TCP socket at a time, by its four-tuple: an
// exact lookup, whatever the number of sockets on the host (/proc/net/tcp
// would list them all).
//
// Each request carries its own nlmsg_seq, and only the reply with that seq
// and the four-tuple asked for answers it: a reply that comes after its
// request timed out (sockDiagTimeout) is still in the socket's queue when
// the next request is sent, and read as the next answer it would credit
// that connection to the process of the one before.
type sockDiag struct {
	fd   int
	seq  uint32 // the last request's nlmsg_seq
	late bool   // a request timed out: its reply may come yet
	// err is the first error reading or writing the socket (not an answer
	// such as "no such socket"): the socket is no good any more.
	err error
	buf []byte
}

const (
	sockDiagTimeout = time.Second // for one answer
	// sockDiagStale bounds the replies to earlier requests read while
	// waiting for one answer; there is at most one per timed-out request.
	sockDiagStale = 16
)

func newSockDiag() (*sockDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	// Connected to the kernel (port 0), so a request is a plain write.
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	if err := setRecvTimeout(fd, sockDiagTimeout); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	return &sockDiag{fd: fd, buf: make([]byte, 8192)}, nil
}

func setRecvTimeout(fd int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

func (sd *sockDiag) close() { unix.Close(sd.fd) }

// inode is the inode and uid of the socket whose local end is app and
// whose peer is local.
func (sd *sockDiag) inode(app, local netip.AddrPort) (inode uint32, uid int, err error) {
	if sd.late {
		sd.drain()
	}
	sd.seq++
	if _, err := unix.Write(sd.fd, sockDiagRequest(sd.seq, app, local)); err != nil {
		sd.err = fmt.Errorf("sock_diag: %w", err)
		return 0, -1, sd.err
	}
	for range sockDiagStale + 1 {
		n, err := unix.Read(sd.fd, sd.buf)
		switch {
		case err == unix.EINTR: // SO_RCVTIMEO reads are not restarted
			continue
		case err == unix.EAGAIN:
			sd.late = true
			return 0, -1, fmt.Errorf("sock_diag %s → %s: no answer within %v", app, local, sockDiagTimeout)
		case err != nil:
			sd.err = fmt.Errorf("sock_diag: %w", err)
			return 0, -1, sd.err
		}
		inode, uid, ok, err := matchSockDiagReply(sd.buf[:n], sd.seq, app, local)
		if ok {
			return inode, uid, err
		}
		// A late reply to an earlier request: read on.
	}
	sd.late = true
	return 0, -1, fmt.Errorf("sock_diag %s → %s: no answer among %d replies", app, local, sockDiagStale)
}

// drain discards the replies waiting in the socket, late answers to
// requests that timed out.
func (sd *sockDiag) drain() {
	for {
		_, _, err := unix.Recvfrom(sd.fd, sd.buf, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break
		}
	}
	sd.late = false
}

// matchSockDiagReply reads b, one datagram from the socket, for the answer
// to request seq about the socket app → local. ok is false when b does not
// answer it: a reply to another request (another seq), or about another
// socket.
func matchSockDiagReply(b []byte, seq uint32, app, local netip.AddrPort) (inode uint32, uid int, ok bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return 0, -1, false, nil // not a whole message: not the answer either
	}
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		switch {
		case m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4:
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return 0, -1, true, fmt.Errorf("sock_diag %s → %s: %w", app, local, unix.Errno(-e))
			}
		case m.Header.Type == unix.SOCK_DIAG_BY_FAMILY && len(m.Data) >= 72:
			// struct inet_diag_msg: family, state, timer, retrans; id (48
			// bytes: sport, dport, src, dst, if, cookie); expires, rqueue,
			// wqueue, uid, inode. The family is the socket's own: an app's
			// dual-stack socket (Java's) is AF_INET6 with ::ffff:127.0.0.1
			// although the request asked AF_INET, so addresses compare
			// unmapped.
			d := m.Data
			if binary.BigEndian.Uint16(d[4:]) != app.Port() || binary.BigEndian.Uint16(d[6:]) != local.Port() ||
				diagAddr(d[0], d[8:24]) != app.Addr().Unmap() || diagAddr(d[0], d[24:40]) != local.Addr().Unmap() {
				continue
			}
			uid := int(binary.NativeEndian.Uint32(m.Data[64:]))
			ino := binary.NativeEndian.Uint32(m.Data[68:])
			if ino == 0 {
				return 0, -1, true, errNoProcess // closing: no owner any more
			}
			return ino, uid, true, nil
		}
	}
	return 0, -1, false, nil
}

// diagAddr is an address of struct inet_diag_sockid, unmapped.
func diagAddr(family byte, b []byte) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// sockDiagID is the address family and the start of struct inet_diag_sockid
// (sport, dport, src, dst; ports and addresses in network order) naming the
// socket app → local, as a request carries it and the kernel's reply
// echoes it.
func sockDiagID(app, local netip.AddrPort) (family uint8, id [36]byte) {
	family, a, l := uint8(unix.AF_INET6), app.Addr().As16(), local.Addr().As16()
	if app.Addr().Unmap().Is4() {
		// The app's own socket is IPv4 even when tlsbridge's listener is
		// dual-stack and sees ::ffff:127.0.0.1. The kernel puts an IPv4
		// address in the first 4 bytes of the 16 and zeroes the rest.
		family = unix.AF_INET
		a4, l4 := app.Addr().Unmap().As4(), local.Addr().Unmap().As4()
		a, l = [16]byte{}, [16]byte{}
		copy(a[:], a4[:])
		copy(l[:], l4[:])
	}
	binary.BigEndian.PutUint16(id[0:], app.Port())
	binary.BigEndian.PutUint16(id[2:], local.Port())
	copy(id[4:20], a[:])
	copy(id[20:36], l[:])
	return family, id
}

// sockDiagRequest is a netlink message (number seq) asking for one TCP
// socket by its four-tuple: struct nlmsghdr, then struct inet_diag_req_v2.
func sockDiagRequest(seq uint32, app, local netip.AddrPort) []byte {
	const hdr, req = 16, 56
	b := make([]byte, hdr+req)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], hdr+req)
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	r := b[hdr:]
	family, id := sockDiagID(app, local)
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // every state
	copy(r[8:], id[:])
	ne.PutUint32(r[8+40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(r[8+44:], 0xffffffff)
	return b
}

// fdScanMax caps the fds read per process: a readlink each, about 1 µs,
// so one process costs at most a few ms of the resolver's budget however
// many fds it holds (a busy server can hold hundreds of thousands). A
// socket beyond the cap in a process that large is not found, and its
// connection is known by its address.
const fdScanMax = 4096

// fdsLinkedTo returns the indexes of the links in want that pid holds as
// fds, among its first fdScanMax, and removes them from want.
func fdsLinkedTo(pid int, want map[string]int) []int {
	return fdsLinkedToMax(pid, want, fdScanMax)
}

func fdsLinkedToMax(pid int, want map[string]int, limit int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	var got []int
	for scanned := 0; len(want) > 0 && scanned < limit; {
		names, err := d.Readdirnames(min(256, limit-scanned))
		scanned += len(names)
		for _, n := range names {
			l, err := os.Readlink(dir + n)
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if i, ok := want[l]; ok {
				got = append(got, i)
				delete(want, l)
			}
		}
		if err != nil {
			break
		}
	}
	return got
}

// procOf describes pid: its name (comm, what ps shows) and executable.
func procOf(pid, uid int) procInfo {
	p := procInfo{pid: pid, uid: uid}
	base := "/proc/" + strconv.Itoa(pid) + "/"
	if b, err := os.ReadFile(base + "comm"); err == nil {
		p.comm = strings.TrimSpace(string(b))
	}
	if exe, err := os.Readlink(base + "exe"); err == nil {
		p.exe = exe
	}
	if p.comm == "" {
		p.comm = "pid " + strconv.Itoa(pid)
	}
	return p
}

// processCPU is the process's CPU time (user and system).
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
