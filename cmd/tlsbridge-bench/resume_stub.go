//go:build !(openssl && cgo)

package main

import "errors"

// sessionIDDialers needs OpenSSL's client: Go's crypto/tls client resumes
// only by ticket.
func sessionIDDialers(*options) (func() appDialer, error) {
	return nil, errors.New("-resume id plays the app with OpenSSL's client (Go's cannot resume by session ID): build the load tool with -tags openssl (CGO_ENABLED=1 go build -tags openssl ./cmd/tlsbridge-bench)")
}
