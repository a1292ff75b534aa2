// Package bump is tlsbridge's interception engine. Every app connection —
// a CONNECT on the proxy port, a connection to a [[listener]] — runs one
// pipeline (session.go):
//
//	accept → peek → decide → dial → terminate → relay
//
// accept admits the client (allow_clients, max_connections; guard.go) and,
// on the proxy port, reads the CONNECT head with internal/http1, checks
// proxy authentication and loops (front.go). peek reads the app's
// ClientHello without consuming it (hello.go). decide applies the rule
// (decide.go):
//   - deny, or a port outside connect_ports: 403 with the reason.
//   - tunnel: bytes are relayed untouched, half-close honoured.
//   - bump: the app's TLS (1.0 and up, legacy cipher suites included) is
//     terminated with a leaf minted by package ca for the SNI name, or for
//     the CONNECT host when the app sends no SNI or connects by IP; a
//     verified TLS 1.2+ connection is made to the upstream.
//   - auto (the default): apps that can offer the upstream's minimum version
//     keep end-to-end TLS (tunnel), the rest are bumped.
//
// dial takes a pooled upstream connection or dials one (dial.go), directly
// or through the rule's parent proxy (parent.go), presenting the rule's
// client certificate (clientcert.go) and completing a chain sent without
// its intermediate when the rule says fetch_intermediates (aia.go); terminate
// completes the app's handshake, answering with the ALPN protocol the
// upstream chose, so h2 works end to end (terminate.go). relay is the
// HTTP/1.1 intermediary for bumped HTTP/1.x (http1relay.go: one parser
// decides where each message ends, so nothing can be smuggled past it, and
// upstream connections are pooled across an app's connections) or a byte
// relay for tunnels, h2 and other protocols (relay.go). A failure anywhere
// is classified once (classify, errors.go): the app reads a 502/504 that
// says what failed and how to fix it, the log gets the same words, and the
// metrics a reason label; `tlsbridge check` dials the same way and prints
// the same verdict.
//
// Everything derived from the policy — rules, [limits], upstream TLS
// configs and transports — is one immutable snapshot (snapshot.go), swapped
// whole by SetPolicy; a connection keeps the snapshot it was accepted
// under. goproxy (github.com/elazarl/goproxy, imported here only) serves
// what is left: plain http:// forwarding, through the matched rule's
// transport.
//
// Every connection in the pipeline is tracked by the Server, so Serve's
// shutdown drains and then closes them.
package bump
