package bump_test

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

// A minimal proxy on the default policy: loopback, CONNECT to 443 only,
// auto mode, upstream TLS 1.2+ with verification.
func Example() {
	authority, _, err := ca.LoadOrCreate(os.TempDir()+"/tlsbridge-example", ca.Options{})
	if err != nil {
		log.Fatal(err)
	}
	certs, err := ca.NewCache(authority, ca.CacheConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer certs.Close()
	srv, err := bump.New(bump.Config{Policy: policy.Default(), Certs: certs})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:3128")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := srv.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}
