//go:build openssl && cgo

package openssl_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/openssl"
)

// BenchmarkHandshake is the engine's cost of one handshake of a TLS 1.0
// RSA-key-exchange app (XP, Java 6), resumed by session ID and full: both
// sides in-process over loopback TCP; the server half is what tlsbridge
// pays per connection.
func BenchmarkHandshake(b *testing.B) {
	f := newFixture(b)
	cert, err := f.certs.Get("app.test", ca.KeyRSA2048)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := openssl.NewServerCtx(openssl.ServerConfig{CipherSuites: legacySuites})
	if err != nil {
		b.Fatal(err)
	}
	client := f.xpClient(b, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	once := func(sess *openssl.Session) (*openssl.Session, bool) {
		cr, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sr, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			sc, err := srv.Server(sr, openssl.ConnConfig{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12,
				Certificate: cert, SessionContext: []byte("app.test")})
			if err == nil {
				err = sc.Handshake(context.Background())
				sc.Close()
			}
			done <- err
		}()
		c, err := client.Client(cr, "app.test", sess)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Handshake(context.Background()); err != nil {
			b.Fatal(err)
		}
		resumed := c.State().DidResume
		s := c.Session()
		c.Close()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return s, resumed
	}
	sess, _ := once(nil)
	b.Run("resumed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := once(sess); !ok {
				b.Fatal("not resumed")
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			once(nil)
		}
	})
}
