// Package bump is tlsbridge's interception engine: an HTTP proxy front end
// (github.com/elazarl/goproxy, the only importer of it) whose CONNECT
// requests are dispatched by policy.
//
// For each CONNECT the matching policy.Rule decides:
//   - deny, or a port outside connect_ports: 403 with the reason.
//   - tunnel: bytes are relayed untouched, half-close honoured.
//   - bump: the app's TLS (1.0 and up, legacy cipher suites included) is
//     terminated with a leaf minted by package ca for the SNI name, or for
//     the CONNECT host when the app sends no SNI or connects by IP; a verified
//     TLS 1.2+ connection is made to the upstream; then bytes flow between
//     the two TLS connections with no per-request parsing.
//   - auto (the default): the ClientHello is read without being consumed
//     (crypto/tls parses it, the bytes are replayed); apps that can offer the
//     upstream's minimum version keep end-to-end TLS (tunnel), the rest are
//     bumped.
//
// The upstream is dialled before the app's handshake completes, so the app
// can be answered with the ALPN protocol the upstream chose (h2 end to end),
// and so that an upstream failure can be explained to the app: its handshake
// is completed and its first request answered with a plain-text 502 (or 504)
// saying what failed and how to fix it. Clients do not show the body of a
// failed CONNECT, but they do show a response to their own request.
//
// An app may also speak TLS to the proxy port itself
// (https_proxy=https://127.0.0.1:3128); the first byte tells, and the proxy's
// own certificate comes from the same CA.
//
// Every hijacked connection is tracked by the Server (goproxy does not), so
// Serve's shutdown drains and then closes them.
package bump
