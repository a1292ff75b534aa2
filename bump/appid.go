package bump

import (
	"net"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// App identity for the census (census.go): who is the app behind a
// connection. The authenticated proxy user when [auth] is on; else, for a
// client on this host, the process that owns the client's socket (Linux:
// /proc, appid_linux.go); else the client's address.
//
// Finding the process costs a sock_diag query and a walk of /proc/*/fd,
// far too much for the accept path. So the accept path only
// notes the connection (a map entry and a non-blocking channel send); one
// background goroutine resolves the notes in batches, remembering the
// processes it found last so that an app's next connection is usually
// found in its own fd directory; and the census asks for the identity when
// the connection ends, by which time it is nearly always known (if not, the
// census entry is written when it is). A note the queue has no room for,
// or a process that exited first, falls back to the address.

// Kinds of app identity.
const (
	appUser    = "user"    // the authenticated proxy user
	appProcess = "process" // the local process owning the client socket
	appAddress = "address" // the client's IP address
)

// appID is who an app is.
type appID struct {
	Kind string // appUser, appProcess or appAddress
	Name string // user name, process name (comm) or IP address
	PID  int    // process only
	UID  int    // process only; -1 when unknown
	User string // process only: the name of UID, when it has one
	Exe  string // process only: the executable's path
	Addr string // the client IP address
}

// appKey groups connections of one app: a user, a process name under one
// uid (each run of an app has a new PID), or an address. A comparable
// struct, so counting a connection builds no string.
type appKey struct {
	kind, name string
	uid        int // process only
}

func (a appID) key() appKey {
	k := appKey{kind: a.Kind, name: a.Name}
	if a.Kind == appProcess {
		k.uid = a.UID
	}
	return k
}

// lookupFunc finds the processes owning the app ends of conns (each the
// app's address and port, then tlsbridge's), trying the PIDs in hint first;
// found[i] is false where none was found. st is the platform's state kept
// between calls (Linux: the sock_diag socket); one goroutine at a time
// uses it.
type lookupFunc func(st *lookupState, conns [][2]netip.AddrPort, hint []int) (procs []procInfo, found []bool)

// procInfo is what the platform's lookup finds for one socket.
type procInfo struct {
	pid  int
	uid  int
	comm string
	exe  string
}

// Resolver bounds.
const (
	resolveQueue  = 256 // pending lookups; more fall back to the address
	resolveRecent = 16  // processes tried first, before a full /proc walk

	// resolveBudget is the share of the process's CPU time the resolver
	// may use, over resolveWindow. Finding a process costs a readlink per
	// fd of the app (measured here: 0.24 ms for an app with 40 fds, 0.04
	// ms per connection in bursts of 16, against 0.55-0.65 ms of proxy CPU
	// for a whole new TLS 1.0 connection), so under a high connection rate
	// the resolver takes a sample: over budget, new connections are known
	// by their address and counted in unattributed.
	resolveBudget = 0.03
	resolveWindow = 10 * time.Second
	// resolveFloor is what the resolver may always spend per window, so an
	// idle proxy (little CPU to take 3% of) still names every app: a new
	// app process costs one walk of /proc, a few ms.
	resolveFloor = 200 * time.Millisecond
)

// appLookup is one noted connection: the pair that names it, its result
// once known, and the callback waiting for it. It lives in the
// connection's connInfo, so it goes when the connection goes: nothing to
// expire, nothing to bound but the queue.
type appLookup struct {
	k      [2]netip.AddrPort // the app's address and port, tlsbridge's
	done   bool
	id     appID
	waiter func(appID)
}

// appResolver maps client connections to processes, off the accept path.
type appResolver struct {
	lookup lookupFunc  // nil: not supported here
	st     lookupState // lookup's; the goroutine's until it ends, then close's

	mu     sync.Mutex // guards every appLookup, recent and users
	queue  chan *appLookup
	recent []int // PIDs found last, most recent first
	users  map[int]string
	// lookupUser is user.LookupId; tests replace it before the first note.
	lookupUser func(uid string) (*user.User, error)
	stop       chan struct{}
	done       chan struct{}
	once       sync.Once

	// closeMu is held for reading while note queues, for writing while
	// close sets closed: after close, nothing is queued that the goroutine
	// would not see.
	closeMu sync.RWMutex
	closed  bool

	over         atomic.Bool   // the resolver is over its CPU budget
	unattributed atomic.Uint64 // connections not looked up (over budget, queue full)
	spent        atomic.Int64  // time spent in lookups, ns
}

// newAppResolver starts the resolver's goroutine when lookup is non-nil
// (the platform can look processes up); close stops it.
func newAppResolver(lookup lookupFunc) *appResolver {
	r := &appResolver{lookup: lookup, users: make(map[int]string), lookupUser: user.LookupId,
		stop: make(chan struct{}), done: make(chan struct{})}
	if r.lookup == nil {
		close(r.done)
		return r
	}
	r.queue = make(chan *appLookup, resolveQueue)
	go r.run()
	return r
}

// close stops the goroutine, waits for it and closes what the lookups
// kept open; it is idempotent.
func (r *appResolver) close() {
	r.once.Do(func() {
		r.closeMu.Lock()
		r.closed = true
		r.closeMu.Unlock()
		close(r.stop)
		<-r.done
		r.st.close()
	})
	<-r.done
}

// connKey is the pair that names a client connection, if it is a TCP
// client on this host (only those have a process here).
func connKey(c net.Conn) ([2]netip.AddrPort, bool) {
	ra, ok1 := c.RemoteAddr().(*net.TCPAddr)
	la, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || !ra.IP.IsLoopback() {
		return [2]netip.AddrPort{}, false
	}
	return [2]netip.AddrPort{ra.AddrPort(), la.AddrPort()}, true
}

// note starts resolving the process behind c, a new client connection, and
// returns the lookup to pass to identify (nil: the address it is). It never
// blocks: with the queue full, or the resolver closed, the app is known by
// its address.
func (r *appResolver) note(c net.Conn) *appLookup {
	if r == nil || r.lookup == nil {
		return nil
	}
	k, ok := connKey(c)
	if !ok {
		return nil
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		// The goroutine is gone or going: a note queued now would never
		// be looked up, and its identify would wait forever.
		return nil
	}
	if r.over.Load() {
		r.unattributed.Add(1)
		return nil
	}
	l := &appLookup{k: k}
	select {
	case r.queue <- l:
		return l
	default:
		r.unattributed.Add(1)
		return nil
	}
}

// identify calls f with the identity of l's app: now when it is known (or
// l is nil), else when the resolver finds it. fallback is the identity when
// no process was found.
func (r *appResolver) identify(l *appLookup, fallback appID, f func(appID)) {
	if l == nil {
		f(fallback)
		return
	}
	wrap := func(id appID) {
		if id.Kind == "" {
			id = fallback
		}
		f(id)
	}
	r.mu.Lock()
	if !l.done {
		l.waiter = wrap
		r.mu.Unlock()
		return
	}
	id := l.id
	r.mu.Unlock()
	wrap(id)
}

// finish records a result and runs the waiter outside the lock.
func (r *appResolver) finish(l *appLookup, id appID) {
	r.mu.Lock()
	l.done, l.id = true, id
	w := l.waiter
	l.waiter = nil
	r.mu.Unlock()
	if w != nil {
		w(id)
	}
}

// run resolves noted connections until close, in batches: the notes that
// arrived while the last batch was looked up share one walk of /proc. It
// never waits for more: a short connection must be looked up while its
// socket is still open.
func (r *appResolver) run() {
	defer close(r.done)
	b := newCPUBudget(resolveBudget, resolveWindow, resolveFloor, func() time.Duration { return time.Duration(r.spent.Load()) })
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var batch []*appLookup
	for {
		select {
		case <-tick.C:
			r.over.Store(b.over())
			continue
		case <-r.stop:
			// Whoever waits gets the address.
			for {
				select {
				case l := <-r.queue:
					r.finish(l, appID{})
				default:
					return
				}
			}
		case l := <-r.queue:
			batch = append(batch[:0], l)
		}
	drain:
		for len(batch) < resolveQueue {
			select {
			case l := <-r.queue:
				batch = append(batch, l)
			default:
				break drain
			}
		}
		r.resolve(batch)
		clear(batch)
		r.over.Store(b.over())
	}
}

// resolve looks a batch of connections up and records the results. The
// time it spends, the /proc walk and the user names alike, counts against
// the CPU budget.
func (r *appResolver) resolve(batch []*appLookup) {
	t0 := time.Now()
	r.mu.Lock()
	hint := slices.Clone(r.recent)
	r.mu.Unlock()
	conns := make([][2]netip.AddrPort, len(batch))
	for i, l := range batch {
		conns[i] = l.k
	}
	procs, found := r.lookup(&r.st, conns, hint)
	ids := make([]appID, len(batch))
	for i, l := range batch {
		if !found[i] {
			continue // the fallback
		}
		pi := procs[i]
		ids[i] = appID{Kind: appProcess, Name: pi.comm, PID: pi.pid, UID: pi.uid, Exe: pi.exe,
			Addr: l.k[0].Addr().Unmap().String(), User: r.userName(pi.uid)}
		r.mu.Lock()
		r.recent = slices.DeleteFunc(r.recent, func(pid int) bool { return pid == pi.pid })
		r.recent = slices.Insert(r.recent, 0, pi.pid)
		r.recent = r.recent[:min(len(r.recent), resolveRecent)]
		r.mu.Unlock()
	}
	// Syscalls and file reads (/proc, /etc/passwd): wall time ≈ CPU time.
	r.spent.Add(int64(time.Since(t0)))
	for i, l := range batch {
		r.finish(l, ids[i])
	}
}

// userName names uid, cached (a process lookup already costs a /proc walk;
// a passwd read per connection would add to it).
func (r *appResolver) userName(uid int) string {
	if uid < 0 {
		return ""
	}
	r.mu.Lock()
	name, ok := r.users[uid]
	r.mu.Unlock()
	if ok {
		return name
	}
	if u, err := r.lookupUser(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	r.mu.Lock()
	if len(r.users) < 256 {
		r.users[uid] = name
	}
	r.mu.Unlock()
	return name
}

// cpuBudget tells whether the resolver (its lookup time, spent) used more
// than floor and more than share of the process's CPU time in the current
// window (the previous one's totals
// carry over, so a window's first moments are not judged alone).
type cpuBudget struct {
	share  float64
	window time.Duration
	floor  time.Duration // always allowed per window
	spent  func() time.Duration
	start  time.Time
	t0, p0 time.Duration // lookup time and process CPU at the window's start
	prevT  time.Duration // the previous window's lookup time and process CPU
	prevP  time.Duration
}

func newCPUBudget(share float64, window, floor time.Duration, spent func() time.Duration) *cpuBudget {
	b := &cpuBudget{share: share, window: window, floor: floor, spent: spent, start: time.Now()}
	b.t0, b.p0 = spent(), processCPU()
	return b
}

func (b *cpuBudget) over() bool {
	t, p := b.spent(), processCPU()
	dt, dp := t-b.t0+b.prevT, p-b.p0+b.prevP
	if time.Since(b.start) > b.window {
		b.prevT, b.prevP = t-b.t0, p-b.p0
		b.start, b.t0, b.p0 = time.Now(), t, p
	}
	return dt > b.floor && float64(dt) > b.share*float64(dp)
}
