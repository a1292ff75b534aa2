// Command tlsbridge is a local HTTP CONNECT proxy that lets legacy TLS
// 1.0/1.1 apps reach servers that require TLS 1.2 or later.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlsbridge: %v\n", err)
		os.Exit(1)
	}
}
