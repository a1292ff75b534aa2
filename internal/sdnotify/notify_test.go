package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unixgram socket, as systemd does for a Type=notify
// unit, and returns its name and a function that reads one datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifyPath(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	read := listen(t, sock)
	n, err := New(sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "READY=1\n" {
		t.Errorf("Ready sent %q, want %q", got, "READY=1\n")
	}

	before, _ := monotonicUsec()
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicUsec()
	lines := strings.Split(strings.TrimSuffix(read(), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("Reloading sent %q, want RELOADING=1 and MONOTONIC_USEC=", lines)
	}
	us, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || us < before || us > after {
		t.Errorf("MONOTONIC_USEC=%d (%v), want between %d and %d (CLOCK_MONOTONIC)", us, err, before, after)
	}

	if err := n.Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STOPPING=1\n" {
		t.Errorf("Stopping sent %q", got)
	}
}

// systemd may name an abstract socket: "@/org/freedesktop/systemd1/notify/…".
func TestNotifyAbstract(t *testing.T) {
	sock := fmt.Sprintf("@tlsbridge-sdnotify-test-%d", time.Now().UnixNano())
	read := listen(t, sock)
	n, err := New(sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Send("READY=1", "STATUS=serving"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "READY=1\nSTATUS=serving\n" {
		t.Errorf("sent %q", got)
	}
}

func TestNotifyDisabled(t *testing.T) {
	n, err := New("")
	if err != nil || n.Enabled() {
		t.Fatalf("New(\"\") = %v, %v; want a disabled Notifier", n, err)
	}
	if err := n.Ready(); err != nil {
		t.Errorf("Ready on a disabled Notifier: %v", err)
	}
	var zero Notifier
	if err := zero.Stopping(); err != nil {
		t.Errorf("Stopping on the zero Notifier: %v", err)
	}
}

func TestNotifyErrors(t *testing.T) {
	if _, err := New("relative/notify"); !errors.Is(err, ErrUnsupportedSocket) {
		t.Errorf("relative path: err = %v, want ErrUnsupportedSocket", err)
	}
	if _, err := New("vsock:2:1234"); !errors.Is(err, ErrUnsupportedSocket) {
		t.Errorf("vsock: err = %v, want ErrUnsupportedSocket", err)
	}
	n, err := New(filepath.Join(t.TempDir(), "nobody-listens"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "nobody-listens") {
		t.Errorf("Ready to a missing socket: err = %v, want one naming the socket", err)
	}
}
