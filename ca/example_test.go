package ca_test

import (
	"crypto/tls"
	"fmt"
	"log"
	"os"

	"github.com/tlsbridge/tlsbridge/ca"
)

// Load the CA (creating it on first run), then serve leaves for intercepted
// hosts from a Cache in a tls.Config, picking the leaf key per client.
func Example() {
	dir, err := os.MkdirTemp("", "tlsbridge-ca")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// In tlsbridge: ca.Dir(flagDir, cfg.CA.Dir). ECDSA keeps the example
	// fast; the default (zero Key) is RSA-2048 for the oldest clients.
	a, created, err := ca.LoadOrCreate(dir, ca.Options{Key: ca.KeyECDSAP256})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", created)

	cache, err := ca.NewCache(a, ca.CacheConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	_ = &tls.Config{
		MinVersion: tls.VersionTLS10, //nolint:gosec // legacy apps are the point
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cache.Get(hello.ServerName, cache.KeyTypeFor(hello))
		},
	}

	cert, err := cache.Get("API.Example.com.", ca.KeyRSA2048)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("leaf for:", cert.Leaf.DNSNames)
	fmt.Println("issuer is our CA:", cert.Leaf.Issuer.CommonName == a.Cert.Subject.CommonName)
	// Output:
	// created: true
	// leaf for: [api.example.com]
	// issuer is our CA: true
}

func ExampleDir() {
	// Flag beats $TLSBRIDGE_CA_DIR beats ca.dir in the config file.
	dir, err := ca.Dir("/srv/tlsbridge/ca", "/etc/tlsbridge/ca")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dir)
	// Output: /srv/tlsbridge/ca
}
