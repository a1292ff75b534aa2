package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Notifier sends state changes to one notification socket. The zero value
// and nil are valid and do nothing; it holds no connection, so it is safe
// for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier for socket, the value of $NOTIFY_SOCKET: an
// absolute path, or a name in Linux's abstract namespace written with a
// leading "@" (as systemd does). An empty socket gives a Notifier that does
// nothing. Other forms (a relative path; "vsock:", which systemd 254 added
// for virtual machines) are an error.
func New(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: %w", socket, ErrUnsupportedSocket)
	}
	// net turns a leading "@" into the abstract namespace's leading NUL.
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// Enabled reports whether n sends anything.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Ready says the daemon is serving: its listeners are open, or a reload is
// complete.
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Reloading says a reload has begun. MONOTONIC_USEC, the CLOCK_MONOTONIC
// time in microseconds, lets systemd (253 and later) tell this reload from
// an earlier one; older versions ignore it.
func (n *Notifier) Reloading() error {
	if us, ok := monotonicUsec(); ok {
		return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatUint(us, 10))
	}
	return n.Send("RELOADING=1")
}

// Stopping says the daemon has begun to shut down (drain).
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Send sends one datagram with the given VAR=value assignments, one per
// line. It does nothing when n is not Enabled.
func (n *Notifier) Send(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	return nil
}
