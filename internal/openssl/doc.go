// Package openssl is tlsbridge's legacy TLS engine: OpenSSL (Debian's
// libssl, through cgo) for the app-facing handshakes that Go's crypto/tls
// server cannot do or does slowly — SSLv2-compatible ClientHellos (Java 6's
// default), session resumption by session ID (Windows XP's SChannel, Java
// 6, embedded stacks) and RSA key exchange at OpenSSL's cost. It is built
// only with the build tag "openssl" (make build-openssl); the default
// binary stays static, pure Go, without this package's code.
//
// A Conn is a net.Conn over any other net.Conn: OpenSSL reads and writes
// memory BIOs that the Conn fills from, and drains to, the connection
// beneath, so Go's netpoller, deadlines and wrappers (a replayed
// ClientHello, a metered reader) keep working and no C code ever blocks on
// a socket. One Ctx holds what connections share: the cipher list, the
// bounded, expiring server session cache and the ticket keys.
package openssl
