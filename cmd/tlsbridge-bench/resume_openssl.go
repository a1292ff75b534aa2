//go:build openssl && cgo

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tlsbridge/tlsbridge/internal/openssl"
)

// sessionIDDialers returns a maker of app dialers that resume by session
// ID and never by ticket, as Windows XP's SChannel and Java 6 do. Go's
// crypto/tls client resumes only by ticket, so these apps are played by
// OpenSSL's client (internal/openssl), with the suites and version of -suites
// and -tls and full verification against -cacert.
func sessionIDDialers(o *options) (func() appDialer, error) {
	var names []string
	for _, id := range o.suites {
		n, ok := opensslSuites[id]
		if !ok {
			return nil, fmt.Errorf("-resume id: suite %s has no OpenSSL name here (want -suites rsa or legacy)", tls.CipherSuiteName(id))
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("-resume id -suites %s: name the app's suites (want -suites rsa or legacy)", o.suiteSet)
	}
	cctx, err := openssl.NewClientCtx(openssl.ClientConfig{
		RootsFile: o.caFile,
		// @SECLEVEL=0: OpenSSL 3 refuses TLS 1.0's signatures otherwise.
		CipherList: strings.Join(names, ":") + ":@SECLEVEL=0",
		MinVersion: o.version,
		MaxVersion: o.version,
		NoTickets:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("-resume id: %w", err)
	}
	return func() appDialer {
		// The app's session, one per app as a legacy app keeps it (per
		// host: each target has its own).
		sessions := map[string]*openssl.Session{}
		return func(ctx context.Context, target string) (appConn, *bufio.Reader, tls.ConnectionState, error) {
			raw, err := connect(ctx, o, target)
			if err != nil {
				return nil, nil, tls.ConnectionState{}, err
			}
			host, _, _ := net.SplitHostPort(target)
			c, err := cctx.Client(raw, host, sessions[target])
			if err != nil {
				raw.Close()
				return nil, nil, tls.ConnectionState{}, err
			}
			if err := c.Handshake(ctx); err != nil {
				c.Close()
				return nil, nil, tls.ConnectionState{}, fmt.Errorf("TLS handshake with %s: %w", target, err)
			}
			raw.SetDeadline(time.Time{})
			if s := c.Session(); s != nil {
				sessions[target] = s
			}
			st := c.State()
			return c, bufio.NewReaderSize(c, 16<<10), tls.ConnectionState{
				Version: st.Version, CipherSuite: st.CipherSuite, DidResume: st.DidResume,
				NegotiatedProtocol: st.NegotiatedProtocol, HandshakeComplete: true,
			}, nil
		}
	}, nil
}

// opensslSuites are OpenSSL's names of the suites in suiteSets.
var opensslSuites = map[uint16]string{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:   "ECDHE-RSA-AES128-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:   "ECDHE-RSA-AES256-SHA",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:         "AES128-SHA",
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:         "AES256-SHA",
}
