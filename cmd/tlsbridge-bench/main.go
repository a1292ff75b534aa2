// Command tlsbridge-bench is a load tool that behaves like a legacy app:
// CONNECT through a proxy, TLS 1.0 (or another pinned version) with the
// cipher suites old clients offer, full verification against the proxy's CA,
// then GET requests: one per connection (with -close each carries
// "Connection: close", as one-shot apps send it) or, with -keepalive, many.
// It reports throughput, latency percentiles, errors and the proxy's own
// CPU time per operation (read from /proc/PID/stat for each -pid and its
// child processes), which stays meaningful on a noisy machine. Other modes:
// -bulk SIZE (one download: MB/s, CPU s/GiB) and -idle N (RSS per held
// connection); -json prints one machine-readable line.
// examples/bench-vs-squid/bench.sh drives it against tlsbridge and squid.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlsbridge-bench: %v\n", err)
		os.Exit(1)
	}
}
