package bump

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/tlsbridge/tlsbridge/policy"
)

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("bump: server closed")

// TLS alert codes (RFC 5246 7.2, RFC 8446 6) that tlsbridge explains.
const (
	alertHandshakeFailure   = 40
	alertBadCertificate     = 42
	alertCertificateUnknown = 46
	alertUnknownCA          = 48
	alertProtocolVersion    = 70
	alertInternalError      = 80
)

// remoteAlert returns the TLS alert the peer sent, if err is one.
// crypto/tls reports a received alert as *net.OpError{Op: "remote error"}
// whose Err is an unexported type; its text is exactly that of the exported
// tls.AlertError with the same code, which is what we compare with.
func remoteAlert(err error) (uint8, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	msg := op.Err.Error()
	for _, code := range []uint8{alertHandshakeFailure, alertBadCertificate, alertCertificateUnknown, alertUnknownCA, alertProtocolVersion, alertInternalError} {
		if msg == tls.AlertError(code).Error() {
			return code, true
		}
	}
	return 0, false
}

// upstreamError is a failed dial or handshake towards the real server, with
// what is needed to explain it to the person reading the 502.
type upstreamError struct {
	stage  string // "dial" or "handshake"
	host   string // the CONNECT host
	addr   string // the address dialed
	name   string // the verification name
	rule   *policy.Rule
	offers [2]uint16 // versions tlsbridge offered
	err    error
}

func (e *upstreamError) Error() string {
	return fmt.Sprintf("upstream %s %s (%s): %v", e.stage, e.addr, e.name, e.err)
}

func (e *upstreamError) Unwrap() error { return e.err }

// explain turns an upstream failure into an HTTP status, a one-line cause and
// a fix, classified with errors.As on the library's error types.
func (e *upstreamError) explain() (status int, cause, fix string) {
	ruleKey := upstreamSection(e.rule)
	var (
		dnsErr    *net.DNSError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	switch {
	case errors.As(e.err, &dnsErr):
		return http.StatusBadGateway,
			fmt.Sprintf("tlsbridge could not resolve the host name %q: %v.", dnsErr.Name, dnsErr.Err),
			fmt.Sprintf("Check the host name the app uses, or pin the server's address with `address = \"IP:PORT\"` in %s.", ruleKey)
	case errors.Is(e.err, context.DeadlineExceeded) || isTimeout(e.err):
		return http.StatusGatewayTimeout,
			fmt.Sprintf("The server %s did not complete the TLS %s in time.", e.addr, e.stage),
			"Check that the server is reachable from this host and answers TLS on that port."
	case errors.Is(e.err, errLoop):
		return http.StatusLoopDetected,
			fmt.Sprintf("%s resolves to tlsbridge's own listener %s; forwarding there would loop.", e.host, e.addr),
			fmt.Sprintf("Point the app at the real server, or fix `address` in %s.", ruleKey)
	case e.stage == "dial":
		return http.StatusBadGateway,
			fmt.Sprintf("tlsbridge could not connect to %s: %v.", e.addr, e.err),
			fmt.Sprintf("Check that the server is up and the port is right, or pin the address with `address` in %s.", ruleKey)
	case errors.As(e.err, &unknownCA):
		issuer := "an unknown issuer"
		if unknownCA.Cert != nil {
			issuer = fmt.Sprintf("%q", unknownCA.Cert.Issuer.String())
		}
		return http.StatusBadGateway,
			fmt.Sprintf("The certificate of %s is signed by an unknown authority (issuer %s): it does not chain to the system roots or to any file in ca_files.", e.name, issuer),
			fmt.Sprintf("Add the PEM file of the CA that issued it to `ca_files` in %s, e.g. ca_files = [\"origin-ca.pem\"].", ruleKey)
	case errors.As(e.err, &hostErr):
		return http.StatusBadGateway,
			fmt.Sprintf("The certificate of %s is not valid for the name %q: %v.", e.addr, e.name, hostErr.Error()),
			fmt.Sprintf("Connect to the name the certificate carries, or set `server_name` in %s to a name it is valid for.", ruleKey)
	case errors.As(e.err, &invalid):
		return http.StatusBadGateway,
			fmt.Sprintf("The certificate of %s was rejected: %v.", e.name, invalid.Error()),
			"Renew or fix the server's certificate; if you must accept it as is, set `verify = false` in a rule for this host only."
	case errors.As(e.err, &verifyErr):
		return http.StatusBadGateway,
			fmt.Sprintf("The certificate of %s failed verification: %v.", e.name, verifyErr.Err),
			fmt.Sprintf("Add the issuing CA to `ca_files` in %s.", ruleKey)
	}
	if code, ok := remoteAlert(e.err); ok && code == alertProtocolVersion {
		return http.StatusBadGateway,
			fmt.Sprintf("The server %s refused the TLS versions tlsbridge may offer it, %s (min_tls/max_tls of %s), with a protocol_version alert.", e.server(), versionRange(e.offers), ruleKey),
			fmt.Sprintf("Lower `min_tls` in %s to a version the server supports (keep it at 1.2 or more unless you must), or upgrade the server.", ruleKey)
	}
	return http.StatusBadGateway,
		fmt.Sprintf("The TLS handshake with %s failed: %v. tlsbridge offered %s (min_tls/max_tls of %s).", e.server(), e.err, versionRange(e.offers), ruleKey),
		fmt.Sprintf("Check which versions and ciphers the server accepts (openssl s_client -connect %s), then adjust %s.", e.addr, ruleKey)
}

// upstreamSection names the config table where the fix for rule's upstream
// goes: a listener's synthetic rule (see ServeListener) carries the
// listener's name.
func upstreamSection(rule *policy.Rule) string {
	if rule == nil {
		return section("default", "upstream")
	}
	return section(rule.Name, "upstream")
}

// section names the config table that holds side ("client" or "upstream")
// for a rule or listener name.
func section(name, side string) string {
	switch {
	case name == "default":
		return "[" + side + "]"
	case strings.HasPrefix(name, "listener["):
		return "[listener." + side + "] of " + name
	}
	return "[rule." + side + "] of " + name
}

// server names the upstream for a person: the host, and the address dialled
// when a rule pins a different one.
func (e *upstreamError) server() string {
	if e.addr == "" || strings.HasPrefix(e.addr, e.host+":") || strings.HasPrefix(e.addr, "["+e.host+"]:") {
		return e.host
	}
	return fmt.Sprintf("%s (dialled at %s)", e.host, e.addr)
}

// versionRange prints "TLS 1.3 only" or "TLS 1.2–1.3".
func versionRange(v [2]uint16) string {
	if v[0] == v[1] {
		return "TLS " + policy.TLSVersionName(v[0]) + " only"
	}
	return "TLS " + policy.TLSVersionName(v[0]) + "–" + policy.TLSVersionName(v[1])
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errorBody is the plain-text body of a 502/504 the app reads.
func errorBody(status int, host string, cause, fix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tlsbridge: %d %s for %s\n\n", status, http.StatusText(status), host)
	fmt.Fprintf(&b, "What failed: %s\n", cause)
	fmt.Fprintf(&b, "How to fix: %s\n", fix)
	return b.String()
}

// clientHint explains a failed app-facing handshake, for the log line.
func clientHint(err error, h *clientHello) string {
	if errors.Is(err, errSSLv2Hello) {
		return "the app sent an SSLv2-format ClientHello; disable SSLv2Hello on the client (Java: -Djdk.tls.client.protocols=TLSv1 and remove SSLv2Hello from https.protocols)"
	}
	if errors.Is(err, errClientVersion) {
		return "lower client.min_tls (or raise max_tls) in that rule or in [client] if this app must be served; the app-facing leg is the loopback one"
	}
	if h != nil {
		if h.maxOffered() < tls.VersionTLS10 {
			return "the app only offers SSL 3.0, which tlsbridge does not accept; enable TLS 1.0 or later on the client"
		}
		if !sharesSuite(h.info.CipherSuites) {
			return "the app offered no cipher suite tlsbridge accepts (see legacyClientCipherSuites); it may only offer RC4 or export suites"
		}
	}
	if code, ok := remoteAlert(err); ok {
		switch code {
		case alertInternalError, alertHandshakeFailure:
			if h != nil && h.maxOffered() <= tls.VersionTLS11 {
				return "OpenSSL 3 clients at the default security level refuse TLS 1.0/1.1 signatures: add @SECLEVEL=0 to the client's cipher string (curl --ciphers 'DEFAULT:@SECLEVEL=0', openssl -cipher 'DEFAULT:@SECLEVEL=0', Python ctx.set_ciphers('DEFAULT:@SECLEVEL=0'))"
			}
		case alertUnknownCA, alertBadCertificate, alertCertificateUnknown:
			return "the app does not trust tlsbridge's CA: run `tlsbridge ca install`, or point the app at the exported ca.pem (curl --cacert, REQUESTS_CA_BUNDLE, a Java truststore)"
		}
	}
	if isTimeout(err) {
		return "the app did not complete its TLS handshake within the handshake timeout"
	}
	return ""
}
