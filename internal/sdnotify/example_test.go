package sdnotify_test

import (
	"log"
	"os"

	"github.com/tlsbridge/tlsbridge/internal/sdnotify"
)

// A daemon reads $NOTIFY_SOCKET once and reports each state change; outside
// systemd the variable is unset and every call does nothing.
func Example() {
	n, err := sdnotify.New(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		log.Fatal(err)
	}
	// ... open listeners ...
	if err := n.Ready(); err != nil {
		log.Print(err)
	}
	// On SIGHUP: n.Reloading(), re-read the config, n.Ready().
	// On SIGTERM: n.Stopping(), then drain.
}
