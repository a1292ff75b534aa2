//go:build !linux

package sdnotify

// monotonicUsec: systemd is Linux only; elsewhere RELOADING=1 goes alone.
func monotonicUsec() (uint64, bool) { return 0, false }
