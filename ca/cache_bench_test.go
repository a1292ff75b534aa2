package ca_test

import (
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// BenchmarkMint measures a cache miss: normalize, sign a leaf over the
// process-wide key, parse it, insert. Every iteration uses a new name. The
// CA is RSA-2048, the default, so this is what a new host costs in
// production; sub-benchmarks name the leaf key type. ECDSA leaves are
// signed by the in-memory ECDSA intermediate, RSA leaves by the CA.
func BenchmarkMint(b *testing.B) {
	benchmarkMint(b, catest.NewWithOptions(b, ca.Options{Key: ca.KeyRSA2048}))
}

// BenchmarkMintPathLen0CA is BenchmarkMint with an RSA-2048 CA of path
// length 0, as tlsbridge made them before the intermediate: it signs ECDSA
// leaves itself, an RSA signature each.
func BenchmarkMintPathLen0CA(b *testing.B) {
	key := testKeys()[ca.KeyRSA2048]
	benchmarkMint(b, importCA(b, buildCA(b, "old tlsbridge CA", key, nil, nil, func(c *x509.Certificate) {
		c.MaxPathLen, c.MaxPathLenZero = 0, true
	}), key))
}

// BenchmarkMintECDSACA is BenchmarkMint with an ECDSA P-256 CA.
func BenchmarkMintECDSACA(b *testing.B) {
	benchmarkMint(b, catest.New(b))
}

func benchmarkMint(b *testing.B, a *ca.Authority) {
	for _, bc := range []struct {
		name string
		kt   ca.KeyType
	}{
		{"ecdsa", ca.KeyECDSAP256},
		{"rsa", ca.KeyRSA2048},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := catest.NewCache(b, a)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, err := c.Get(fmt.Sprintf("h%d.example.com", i), bc.kt); err != nil {
					b.Fatal(err)
				}
			}
			if got := c.Stats().Mints; got != uint64(i) {
				b.Fatalf("Mints = %d, want %d", got, i)
			}
		})
	}
}

// BenchmarkGetCached measures a cache hit, the common case once a host has
// been seen, with goroutines contending on the cache lock.
func BenchmarkGetCached(b *testing.B) {
	c := catest.NewCache(b, catest.New(b))
	if _, err := c.Get("api.example.com", ca.KeyECDSAP256); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get("api.example.com", ca.KeyECDSAP256); err != nil {
			b.Fatal(err)
		}
	}
}
