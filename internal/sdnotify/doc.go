// Package sdnotify tells a service manager about the daemon's state over the
// socket named by $NOTIFY_SOCKET, the protocol of sd_notify(3): one
// datagram of newline-separated VAR=value lines per state change. systemd
// runs tlsbridge as Type=notify (packaging/tlsbridge.service) and waits for
// READY=1 before it starts units ordered after it or reports the start as
// done; RELOADING=1 and READY=1 bracket a reload (systemctl reload returns
// when the new config is in force); STOPPING=1 marks the start of the
// drain.
//
// A Notifier for an empty socket name does nothing, so the daemon calls it
// unconditionally and behaves the same outside systemd. It is a few lines
// rather than github.com/coreos/go-systemd/v22/daemon because that package
// sends a string and nothing more: MONOTONIC_USEC, which systemd 253 and
// later want with RELOADING=1, would still be ours to add.
package sdnotify
