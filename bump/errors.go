package bump

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

// TLS alert codes (RFC 5246 7.2, RFC 8446 6) that tlsbridge explains.
const (
	alertBadRecordMAC       = 20
	alertHandshakeFailure   = 40
	alertBadCertificate     = 42
	alertCertificateUnknown = 46
	alertUnknownCA          = 48
	alertAccessDenied       = 49
	alertDecryptError       = 51
	alertProtocolVersion    = 70
	alertInternalError      = 80
	alertCertificateExpired = 45
	alertCertificateRevoked = 44
	alertCertRequired       = 116 // TLS 1.3: the server needs a client certificate (RFC 8446 6.2)
)

var explainedAlerts = []uint8{alertBadRecordMAC, alertHandshakeFailure, alertBadCertificate, alertCertificateUnknown,
	alertUnknownCA, alertDecryptError, alertProtocolVersion, alertInternalError,
	alertAccessDenied, alertCertificateExpired, alertCertificateRevoked, alertCertRequired}

// remoteAlert returns the TLS alert the peer sent, if err is one.
func remoteAlert(err error) (uint8, bool) { return tlsAlert(err, "remote error") }

// localAlert returns the TLS alert crypto/tls sent the peer because of what
// it received (e.g. bad_record_mac for a record it could not decrypt).
func localAlert(err error) (uint8, bool) { return tlsAlert(err, "local error") }

// tlsAlert finds an alert error of crypto/tls: *net.OpError{Op: op} whose
// Err is an unexported type; its text is exactly that of the exported
// tls.AlertError with the same code, which is what we compare with.
func tlsAlert(err error, op string) (uint8, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != op || oe.Err == nil {
		return 0, false
	}
	msg := oe.Err.Error()
	for _, code := range explainedAlerts {
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

// verdict is everything tlsbridge says about one failure, decided in one
// place (classify): the reason label of tlsbridge_handshake_failures_total;
// for an upstream failure the status, cause and fix of the 502/504 the app
// reads (and the log line); for an app-facing one the hint of the log line.
type verdict struct {
	reason     string
	status     int
	cause, fix string
	hint       string
}

// classify is the one classifier of failed dials and handshakes, on both
// sides: errors.Is/As on the types the standard library and tlsbridge
// return, never the text of an error (the alert codes of crypto/tls, which
// has no exported type for them, are read in tlsAlert, with a test that
// fails when Go changes the text). hello is the app's ClientHello when it
// was read; leafKey the [ca] leaf_key in force (0 for auto).
func classify(err error, hello *clientHello, leafKey ca.KeyType) verdict {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.verdict()
	}
	return appVerdict(err, hello, leafKey)
}

// verdict classifies an upstream failure. Every config key a fix names is
// one the loader accepts where the fix says, for the kind of rule that
// failed (see setUpstream; TestHintsLoad applies each fix to a config and
// loads it).
func (e *upstreamError) verdict() verdict {
	ruleKey := upstreamSection(e.rule)
	var (
		dnsErr    *net.DNSError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	bad := func(reason, cause, fix string) verdict {
		return verdict{reason: reason, status: http.StatusBadGateway, cause: cause, fix: fix}
	}
	var (
		pe *parentError
		ce *clientCertError
		ic *incompleteChainError
	)
	switch {
	case errors.As(e.err, &pe):
		return e.parentVerdict(pe)
	case errors.As(e.err, &ce):
		return e.clientCertVerdict(ce)
	case errors.As(e.err, &ic):
		return e.incompleteChainVerdict(ic)
	case errors.As(e.err, &dnsErr):
		cause := fmt.Sprintf("tlsbridge could not resolve the host name %q: %v.", dnsErr.Name, dnsErr.Err)
		if where := e.targetKey(); where != "" {
			return bad(reasonDNS, cause, fmt.Sprintf("The name does not resolve from this host: %s with a name that resolves, or an IP address.", where))
		}
		return bad(reasonDNS, cause, fmt.Sprintf("Check the host name the app uses, or pin the server's address: %s.", e.setUpstream("address", `"IP:PORT"`, true)))
	case errors.Is(e.err, context.DeadlineExceeded) || isTimeout(e.err):
		return verdict{reason: reasonTimeout, status: http.StatusGatewayTimeout,
			cause: fmt.Sprintf("The server %s did not %s in time.", e.addr, e.stageDone()),
			fix:   "Check that the server is reachable from this host and answers TLS on that port."}
	case errors.Is(e.err, errLoop):
		v := verdict{reason: reasonOther, status: http.StatusLoopDetected,
			cause: fmt.Sprintf("%s resolves to tlsbridge's own listener %s; forwarding there would loop.", e.host, e.addr)}
		if where := e.targetKey(); where != "" {
			v.fix = fmt.Sprintf("Point it at the real server: %s.", where)
		} else {
			v.fix = fmt.Sprintf("Point the app at the real server, or pin the real server's address: %s.", e.setUpstream("address", `"IP:PORT"`, true))
		}
		return v
	// Certificate failures before the dial branch: a plain-HTTP forward
	// of an https:// URI reports its handshake as part of its dial.
	case errors.As(e.err, &unknownCA):
		issuer := "an unknown issuer"
		if unknownCA.Cert != nil {
			issuer = fmt.Sprintf("%q", unknownCA.Cert.Issuer.String())
		}
		return bad(reasonUnknownAuthority,
			fmt.Sprintf("The certificate of %s is signed by an unknown authority (issuer %s): it does not chain to the system roots or to any file in ca_files.", e.name, issuer),
			fmt.Sprintf("Add the PEM file of the CA that issued it: %s.", e.addCAFile()))
	case errors.As(e.err, &hostErr):
		if hostErr.Certificate == nil { // x509.HostnameError.Error needs it
			return bad(reasonHostname, fmt.Sprintf("The certificate of %s is not valid for the name %q.", e.addr, e.name),
				"Connect to a name the certificate carries, or have the server's certificate reissued for this name.")
		}
		cause := fmt.Sprintf("The certificate of %s is not valid for the name %q: %v.", e.addr, e.name, hostErr.Error())
		if len(hostErr.Certificate.DNSNames) == 0 {
			return bad(reasonHostname, cause, "Connect to a name the certificate carries, or have the server's certificate reissued for this name.")
		}
		return bad(reasonHostname, cause,
			fmt.Sprintf("Connect to a name the certificate carries, or verify it as one: %s.", e.setUpstream("server_name", fmt.Sprintf("%q", hostErr.Certificate.DNSNames[0]), true)))
	case errors.As(e.err, &invalid):
		reason := reasonBadCertificate
		if invalid.Reason == x509.Expired {
			reason = reasonExpired
		}
		return bad(reason,
			fmt.Sprintf("The certificate of %s was rejected: %v.", e.name, invalid.Error()),
			fmt.Sprintf("Renew or fix the server's certificate; if you must accept it as is, for this host only: %s.", e.setUpstream("verify", "false", true)))
	case errors.As(e.err, &verifyErr):
		return bad(reasonBadCertificate,
			fmt.Sprintf("The certificate of %s failed verification: %v.", e.name, verifyErr.Err),
			fmt.Sprintf("Add the PEM file of the issuing CA: %s.", e.addCAFile()))
	case e.stage == "dial":
		reason := reasonOther
		if errors.Is(e.err, errConnRefused) {
			reason = reasonDialRefused
		}
		cause := fmt.Sprintf("tlsbridge could not connect to %s: %v.", e.addr, e.err)
		if where := e.targetKey(); where != "" {
			return bad(reason, cause, fmt.Sprintf("Check that the server at %s is up and listening, or %s.", e.addr, where))
		}
		return bad(reason, cause, fmt.Sprintf("Check that the server is up and the port is right, or pin its address: %s.", e.setUpstream("address", `"IP:PORT"`, true)))
	case e.stage != "handshake":
		return bad(closedOr(e.err, reasonOther),
			fmt.Sprintf("The connection to %s failed during the %s: %v.", e.server(), e.stage, e.err),
			"The server closed or reset the connection; check its logs for the reason.")
	}
	code, remote := remoteAlert(e.err)
	switch {
	case remote && code == alertProtocolVersion:
		return bad(reasonProtocolVersion,
			fmt.Sprintf("The server %s refused the TLS versions tlsbridge may offer it, %s (min_tls/max_tls of %s), with a protocol_version alert.", e.server(), versionRange(e.offers), ruleKey),
			e.versionFix())
	case remote && isTrustAlert(code):
		return e.trustAlertVerdict()
	}
	// A close or a reset: which one the app side sees depends on whether
	// the parent still had our ClientHello unread when it closed (a race).
	if p := ruleParent(e.rule); p != nil && (errors.Is(e.err, io.EOF) || errors.Is(e.err, errConnReset)) {
		return bad(reasonParentProxy,
			fmt.Sprintf("The tunnel through the parent proxy %s closed during the TLS handshake with %s: the parent answered the CONNECT and then closed or reset the connection (or let the server do it).", p, e.server()),
			fmt.Sprintf("Check the parent proxy's logs for %s: it may refuse or intercept TLS to this host; if the server is reachable without the parent, %s.", e.addr, e.setUpstream("proxy", `"direct"`, true)))
	}
	return bad(closedOr(e.err, reasonOther), e.handshakeCause(ruleKey), e.handshakeFix())
}

// trustAlertVerdict explains a server that ended the handshake with an
// alert about a certificate (bad_certificate, unknown_ca,
// certificate_unknown) where the handshake did not show it asking for one
// (a server that asked is a *clientCertError already). The only
// certificate tlsbridge can send a server is the rule's client_cert: with
// one, the server rejected it (clientCertVerdict, which names the file);
// without, the server most likely requires one.
func (e *upstreamError) trustAlertVerdict() verdict {
	if e.rule != nil && e.rule.Upstream.ClientCert != nil {
		return e.clientCertVerdict(&clientCertError{cert: e.rule.Upstream.ClientCert.Leaf, file: e.rule.Upstream.ClientCertFile, err: e.err})
	}
	return verdict{reason: reasonClientCert, status: http.StatusBadGateway,
		cause: fmt.Sprintf("The server %s ended the TLS handshake with an alert about a certificate: %v. tlsbridge sent it no certificate (%s has no client_cert), so the server most likely requires a client certificate (mutual TLS).", e.server(), e.err, upstreamSection(e.rule)),
		fix:   fmt.Sprintf("If the server requires a client certificate, give tlsbridge the one it expects: %s (with `client_key = \"client-key.pem\"` beside it); otherwise the server's logs name the certificate it rejected.", e.setUpstream("client_cert", `"client.pem"`, true))}
}

// handshakeCause and handshakeFix explain a TLS handshake with the server
// that failed for a reason tlsbridge has no better words for.
func (e *upstreamError) handshakeCause(ruleKey string) string {
	return fmt.Sprintf("The TLS handshake with %s failed: %v. tlsbridge offered %s (min_tls/max_tls of %s).", e.server(), e.err, versionRange(e.offers), ruleKey)
}

func (e *upstreamError) handshakeFix() string {
	return fmt.Sprintf("Check which versions and ciphers the server accepts (openssl s_client -connect %s), then adjust `min_tls` or `max_tls` in %s.", e.addr, e.upstreamTable())
}

// closedOr is reasonClosed for a peer that closed the connection, else
// reason.
func closedOr(err error, reason string) string {
	if errors.Is(err, io.EOF) {
		return reasonClosed
	}
	return reason
}

// stageDone says what did not finish in time, for the 504's cause.
func (e *upstreamError) stageDone() string {
	switch e.stage {
	case "dial":
		return "accept the TCP connection"
	case "handshake":
		return "complete the TLS handshake"
	}
	return "answer"
}

// versionFix is the fix for a server that refused every version offered:
// lower min_tls (for this host only) or, when max_tls is below 1.3, raise it.
func (e *upstreamError) versionFix() string {
	var u policy.UpstreamTLS
	if e.rule != nil {
		u = e.rule.Upstream
	}
	var b strings.Builder
	if u.MinVersion > tls.VersionTLS10 {
		fmt.Fprintf(&b, "If the server is old, lower the minimum (keep it at 1.2 or more unless you must): %s; ",
			e.setUpstream("min_tls", fmt.Sprintf("%q", policy.TLSVersionName(u.MinVersion-1)), true))
	}
	if u.MaxVersion != 0 && u.MaxVersion < tls.VersionTLS13 {
		fmt.Fprintf(&b, "If the server is new, raise the maximum: %s; ", e.setUpstream("max_tls", `"1.3"`, false))
	}
	if b.Len() == 0 {
		return "Upgrade the server: it accepts no TLS version tlsbridge can offer."
	}
	return b.String() + "or upgrade the server."
}

// isListenerRule reports a listener's synthetic rule (see ServeListener).
func isListenerRule(r *policy.Rule) bool {
	return r != nil && strings.HasPrefix(r.Name, "listener[")
}

// isDefaultRule reports the fallback rule, whose settings are the global
// tables.
func isDefaultRule(r *policy.Rule) bool { return r == nil || r.Name == "default" }

// targetKey names the setting that chose the address dialled, when one did:
// a rule's address or a listener's upstream, which the fix then corrects
// instead of telling the user to set it.
func (e *upstreamError) targetKey() string {
	switch {
	case isListenerRule(e.rule):
		return fmt.Sprintf("fix `upstream = %q` in %s (or `address` in its [listener.upstream])", e.addr, e.rule.Name)
	case e.rule != nil && e.rule.Upstream.Address != "":
		return fmt.Sprintf("fix `address = %q` in [rule.upstream] of %s", e.rule.Upstream.Address, e.rule.Name)
	}
	return ""
}

// setUpstream tells a person how to set key = value (a TOML value) for this
// upstream, in a table where the loader accepts key and where it applies to
// e.host:
//   - a listener: [listener.upstream] of listener[N] (server_name: the
//     [[listener]] table itself);
//   - the default rule: [upstream] for keys that may apply to every host
//     (ca_files, max_tls); otherwise, and always for address and
//     server_name, which [upstream] does not accept, a new [[rule]] for
//     e.host;
//   - rule[N]: its [rule.upstream], unless narrow (the change must not
//     reach other hosts: address, server_name, verify = false, a lower
//     min_tls) and the rule matches more than e.host; then a new [[rule]]
//     for e.host before it.
func (e *upstreamError) setUpstream(key, value string, narrow bool) string {
	r := e.rule
	perTarget := key == "address" || key == "server_name"
	switch {
	case isListenerRule(r):
		if key == "server_name" {
			return fmt.Sprintf("set `server_name = %s` in %s", value, r.Name)
		}
		return fmt.Sprintf("set `%s = %s` in %s", key, value, e.upstreamTable())
	case isDefaultRule(r) && !narrow && !perTarget:
		return fmt.Sprintf("set `%s = %s` in [upstream]", key, value)
	case isDefaultRule(r):
		return fmt.Sprintf("add a [[rule]] with hosts = [%q] and `%s = %s` in its [rule.upstream]", e.host, key, value)
	case narrow && !onlyHost(r, e.host):
		return fmt.Sprintf("add a [[rule]] with hosts = [%q] before %s (with the same action) and `%s = %s` in its [rule.upstream]", e.host, r.Name, key, value)
	}
	return fmt.Sprintf("set `%s = %s` in [rule.upstream] of %s", key, value, r.Name)
}

// upstreamTable names the table of e.rule's upstream settings, for a
// listener with a reminder that upstream = "host:port" and the
// [listener.upstream] table cannot both be written (TOML has one value per
// key): the table then holds the target as address.
func (e *upstreamError) upstreamTable() string {
	if isListenerRule(e.rule) {
		return fmt.Sprintf("%s (as a table, which then holds the target too: address = %q)", upstreamSection(e.rule), e.addr)
	}
	return upstreamSection(e.rule)
}

// onlyHost reports whether rule matches host and nothing else.
func onlyHost(r *policy.Rule, host string) bool {
	return len(r.Hosts) == 1 && strings.EqualFold(strings.TrimSuffix(r.Hosts[0], "."), strings.TrimSuffix(host, "."))
}

// addCAFile is the fix for an untrusted chain: the files already trusted
// there plus the issuing CA's.
func (e *upstreamError) addCAFile() string {
	var files []string
	if e.rule != nil {
		files = e.rule.Upstream.CAFiles
	}
	q := make([]string, 0, len(files)+1)
	for _, f := range files {
		q = append(q, fmt.Sprintf("%q", f))
	}
	q = append(q, `"origin-ca.pem"`)
	return e.setUpstream("ca_files", "["+strings.Join(q, ", ")+"]", false)
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

// Hints for failed app-facing handshakes that more than one cause shares.
const (
	hintTrust = "the app does not trust tlsbridge's CA: run `tlsbridge ca install`, or point the app at the exported ca.pem (curl --cacert, REQUESTS_CA_BUNDLE, a Java truststore)"
	// hintProxyTrust replaces hintTrust for TLS to the proxy port itself.
	hintProxyTrust = "the app does not trust the proxy's own certificate, which tlsbridge's CA issues: run `tlsbridge ca install`, or give the app the exported ca.pem for its proxy connection (curl --proxy-cacert); or write the proxy URL with http:// (HTTPS_PROXY=http://%s), which needs no TLS to the proxy, while the app's TLS to the server still passes through"
	hintSecLevel   = "add @SECLEVEL=0 to the client's cipher string (curl --ciphers 'DEFAULT:@SECLEVEL=0', openssl -cipher 'DEFAULT:@SECLEVEL=0', Python ctx.set_ciphers('DEFAULT:@SECLEVEL=0'), Node ciphers: 'DEFAULT:@SECLEVEL=0')"
)

// hintSSLv2 explains an SSLv2-format ClientHello.
const hintSSLv2 = "the app sent an SSLv2-format ClientHello, which this build (crypto/tls only) cannot serve; run tlsbridge-openssl (make build-openssl), whose legacy engine serves it, or disable SSLv2Hello on the client (Java: -Djdk.tls.client.protocols=TLSv1 and remove SSLv2Hello from https.protocols)"

// appVerdict classifies a failed app-facing handshake (see classify).
func appVerdict(err error, h *clientHello, leafKey ca.KeyType) verdict {
	var (
		cv     *clientVersionError
		nt     *listenerNotTLSError
		legacy = h != nil && h.maxOffered() <= tls.VersionTLS11
	)
	code, remote := remoteAlert(err)
	trust := remote && isTrustAlert(code)
	switch {
	case errors.Is(err, errSSLv2Hello) && LegacyEngine() != "":
		// The legacy engine serves SSLv2-format hellos of TLS clients;
		// what is left is SSL 2.0 itself, or a hello cut short.
		return verdict{reason: reasonSSLv2Hello, hint: "the app's SSLv2-format ClientHello offers SSL 2.0 only (or was cut short); enable TLS 1.0 or later on the client"}
	case errors.Is(err, errSSLv2Hello):
		return verdict{reason: reasonSSLv2Hello, hint: hintSSLv2}
	case errors.As(err, &nt):
		return verdict{reason: reasonNotTLS, hint: nt.hint()}
	case errors.Is(err, errNotTLS):
		return verdict{reason: reasonNotTLS}
	case errors.As(err, &cv):
		return verdict{reason: reasonProtocolVersion, hint: cv.hint()} // outside client.min_tls/max_tls
	case h != nil && h.maxOffered() < tls.VersionTLS10:
		return verdict{reason: reasonProtocolVersion, hint: "the app only offers SSL 3.0, which tlsbridge does not accept; enable TLS 1.0 or later on the client"}
	case h != nil && !sharesSuite(h.info.CipherSuites):
		return verdict{reason: reasonNoSharedCipher, hint: obsoleteSuitesHint(h.info.CipherSuites)}
	case isTimeout(err) || errors.Is(err, context.DeadlineExceeded):
		return verdict{reason: reasonTimeout, hint: "the app did not complete its TLS handshake within the handshake timeout"}
	}
	if h != nil && !trust {
		// ECDSA suites only, and no P-256 for tlsbridge's ECDSA leaf.
		if hint := curveHint(h, leafKey); hint != "" {
			return verdict{reason: reasonNoSharedCipher, hint: hint}
		}
	}
	switch {
	case legacy && remote && (code == alertInternalError || code == alertHandshakeFailure):
		return verdict{reason: reasonSecLevel, hint: "OpenSSL 3 clients at the default security level refuse TLS 1.0/1.1 signatures: " + hintSecLevel}
	case appClosed(err):
		v := verdict{reason: reasonClosed}
		if legacy {
			// OpenSSL 3 (Node, Python, curl) at its default security
			// level may also just close after the server's first flight.
			v.hint = "the app closed the connection during its TLS 1.0/1.1 handshake without saying why; OpenSSL 3 clients do that at their default security level: " +
				hintSecLevel + "; if the app is not OpenSSL-based, check that it trusts tlsbridge's CA"
		}
		return v
	case trust:
		return verdict{reason: reasonUnknownAuthority, hint: hintTrust}
	case remote && code == alertProtocolVersion:
		return verdict{reason: reasonProtocolVersion}
	}
	if code, ok := localAlert(err); ok && code == alertBadRecordMAC && h != nil && h.maxOffered() >= tls.VersionTLS13 {
		// A TLS 1.3 app that rejects the certificate: some stacks send
		// their alert in a way tlsbridge cannot decrypt.
		return verdict{reason: reasonOther, hint: "a TLS 1.3 app that rejects the certificate it was shown may send its alert in a form that arrives as bad_record_mac (OpenSSL, curl): " + hintTrust}
	}
	return verdict{reason: reasonOther}
}

// listenerNotTLSError is a client_tls listener whose app sent no TLS.
type listenerNotTLSError struct {
	name string
	err  error
}

func (e *listenerNotTLSError) Error() string { return e.err.Error() }
func (e *listenerNotTLSError) Unwrap() error { return e.err }

func (e *listenerNotTLSError) hint() string {
	return fmt.Sprintf("%s has client_tls = true but the app sent no TLS ClientHello; set client_tls = false if the app speaks plain TCP", e.name)
}

// isTrustAlert reports the alerts a client sends when it does not trust the
// certificate it was shown.
func isTrustAlert(code uint8) bool {
	return code == alertUnknownCA || code == alertBadCertificate || code == alertCertificateUnknown
}

// appClosed reports an app that closed (or reset) its connection.
func appClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errConnReset)
}

// obsoleteSuitesHint explains a ClientHello without a single cipher suite
// tlsbridge accepts, naming a few of those it offered.
func obsoleteSuitesHint(offered []uint16) string {
	var names []string
	for _, id := range offered {
		if isGREASE(id) || id == 0x00ff || id == 0x5600 { // SCSVs: renegotiation info, fallback
			continue
		}
		if len(names) == 4 {
			names = append(names, "…")
			break
		}
		names = append(names, tls.CipherSuiteName(id))
	}
	return fmt.Sprintf("the app offered only cipher suites tlsbridge does not accept (%s): RC4, export, NULL, DES or other broken suites; enable AES suites in the app (TLS_RSA_WITH_AES_128_CBC_SHA is in every TLS 1.0 stack since Java 6, OpenSSL 0.9.8 and Windows Vista)",
		strings.Join(names, ", "))
}

// ecdsaSuites are the ECDHE_ECDSA suites the app-facing side accepts: they
// need an ECDSA certificate, which tlsbridge mints on P-256.
var ecdsaSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
}

// curveHint explains an app below TLS 1.3 that lists curves without P-256:
// it cannot take tlsbridge's ECDSA certificate (RFC 8422 section 5.1: the
// certificate's curve must be one the client lists), so only RSA suites are
// left for it. An app that offers RSA suites too gets an RSA certificate
// unless leaf_key forces ECDSA, so it is only explained then.
func curveHint(h *clientHello, leafKey ca.KeyType) string {
	if h.maxOffered() >= tls.VersionTLS13 || len(h.info.SupportedCurves) == 0 || slices.Contains(h.info.SupportedCurves, tls.CurveP256) {
		return ""
	}
	var ecdsa, rsa bool
	for _, id := range h.info.CipherSuites {
		switch {
		case slices.Contains(ecdsaSuites, id):
			ecdsa = true
		case id>>8 != 0x13 && sharesSuite([]uint16{id}):
			rsa = true
		}
	}
	if !ecdsa || rsa && leafKey != ca.KeyECDSAP256 {
		return ""
	}
	var curves []string
	for _, c := range h.info.SupportedCurves {
		if !isGREASE(uint16(c)) {
			curves = append(curves, curveName(c))
		}
	}
	offered := fmt.Sprintf("the app offers the curves %s but not P-256, the curve of tlsbridge's ECDSA certificates", strings.Join(curves, ", "))
	if rsa {
		return offered + "; it also offers RSA suites: set `leaf_key = \"rsa2048\"` in [ca] (or \"auto\", which picks RSA for such apps), or add P-256 (secp256r1, prime256v1) to the app's curves"
	}
	return offered + ", and it offers only ECDSA cipher suites, none for tlsbridge's RSA certificate: add P-256 (secp256r1, prime256v1) to the app's curves, or RSA cipher suites (TLS_ECDHE_RSA_*, TLS_RSA_*)"
}

// curveName names a supported_groups entry the way people configure it.
func curveName(c tls.CurveID) string {
	switch c {
	case tls.CurveP256:
		return "P-256"
	case tls.CurveP384:
		return "P-384"
	case tls.CurveP521:
		return "P-521"
	case tls.X25519:
		return "X25519"
	case 30:
		return "X448"
	case 26, 27, 28:
		return fmt.Sprintf("brainpool (%d)", uint16(c))
	}
	return fmt.Sprintf("group 0x%04x", uint16(c))
}
