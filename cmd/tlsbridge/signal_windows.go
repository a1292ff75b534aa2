package main

import "os"

// notifyReload does nothing: Windows has no SIGHUP (Go's syscall.SIGHUP
// there is a number no one sends), so a config change needs a restart
// until the service's ParamChange control and "tlsbridge reload" exist
// (issue 18).
func notifyReload(chan<- os.Signal) {}
