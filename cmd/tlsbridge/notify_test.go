package main

import (
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// Under systemd (Type=notify), run sends READY=1 once it serves and can be
// reloaded, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a SIGHUP
// reload, failed or not, and STOPPING=1 when the drain starts.
func TestRunNotifiesSystemd(t *testing.T) {
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)

	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if got := string(buf[:n]); !strings.HasPrefix(got, want) {
			t.Fatalf("notification = %q, want %s", got, want)
		}
	}

	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
	defer stop()
	next("READY=1")
	if !strings.Contains(stderr.String(), "tlsbridge listening") {
		t.Errorf("READY=1 before the proxy listens:\n%s", stderr)
	}

	sendSIGHUP(t)
	next("RELOADING=1\nMONOTONIC_USEC=")
	next("READY=1")

	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sendSIGHUP(t)
	next("RELOADING=1")
	next("READY=1") // the previous config stays in force

	stop()
	next("STOPPING=1")
}

// /readyz follows the lifecycle: not ready while starting, ready once the
// ports are open and across reloads, not ready from the drain on, even if a
// reload that was running finishes after it.
func TestNotifierServing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	l := logrus.New()
	l.SetOutput(io.Discard)
	sd := newNotifier(logrus.NewEntry(l))
	for _, step := range []struct {
		do   func()
		name string
		want bool
	}{
		{func() {}, "starting", false},
		{sd.ready, "ready", true},
		{sd.reloading, "reloading", true},
		{sd.ready, "reloaded", true},
		{sd.stopping, "stopping", false},
		{sd.ready, "a reload finishing during the drain", false},
	} {
		step.do()
		if got := sd.serving(); got != step.want {
			t.Errorf("%s: serving() = %v, want %v", step.name, got, step.want)
		}
	}
}
