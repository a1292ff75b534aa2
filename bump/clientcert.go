package bump

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// Client certificates ([upstream] client_cert, client_key): the rule's
// template carries the certificate (newUpstreamBase), each handshake
// records whether the server asked for one (clientAuth), and a server that
// asked and then refused the handshake is a *clientCertError, which
// classify explains.

// clientAuth is what one upstream handshake learned about client
// certificates.
type clientAuth struct {
	asked bool // the server sent a CertificateRequest
	sent  bool // tlsbridge presented its client_cert
}

// trackClientAuth makes cfg (a per-handshake clone) present its client
// certificate to any server that asks, recording in a that it was asked.
// Unlike Config.Certificates alone, the certificate is sent even when the
// server's list of acceptable CAs does not name its issuer (as curl and
// openssl do), so a mismatch is the server's explicit rejection, which
// the 502 can name.
func trackClientAuth(cfg *tls.Config, a *clientAuth) {
	var cert *tls.Certificate
	if len(cfg.Certificates) > 0 {
		cert = &cfg.Certificates[0]
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		a.asked = true
		if cert == nil {
			return &tls.Certificate{}, nil // none: the server decides
		}
		a.sent = true
		return cert, nil
	}
}

// clientCertError is a server that asked for a client certificate and
// then refused the connection with an alert: tlsbridge had none for it, or
// the server rejected client_cert.
type clientCertError struct {
	cert *x509.Certificate // the client_cert leaf presented; nil when none
	file string            // the client_cert file
	// late: the alert came after a TLS 1.3 handshake that looked
	// complete, on the first read (a TLS 1.3 server checks the client's
	// certificate after the client has finished).
	late bool
	err  error
}

func (e *clientCertError) Error() string {
	if e.cert == nil {
		return fmt.Sprintf("the server asked for a client certificate, tlsbridge has none: %v", e.err)
	}
	return fmt.Sprintf("the server rejected the client certificate %q: %v", e.cert.Subject.String(), e.err)
}

func (e *clientCertError) Unwrap() error { return e.err }

// clientCertFailure turns a handshake error into a *clientCertError when
// the server asked for a client certificate and then sent an alert (a
// failure of tlsbridge's own verification of the server is not one).
func clientCertFailure(t target, a clientAuth, err error) error {
	if !a.asked {
		return err
	}
	if _, remote := remoteAlert(err); !remote {
		return err
	}
	ce := &clientCertError{err: err}
	if a.sent && t.rule != nil && t.rule.Upstream.ClientCert != nil {
		ce.cert, ce.file = t.rule.Upstream.ClientCert.Leaf, t.rule.Upstream.ClientCertFile
	}
	return ce
}

// lateClientCertFailure recognises a TLS 1.3 server's rejection of the
// client certificate, which arrives as an alert on the first read after
// the handshake: a certificate alert from a server that received only
// tlsbridge's client certificate (or none) is about that certificate.
func lateClientCertFailure(t target, tc *tls.Conn, err error) (*clientCertError, bool) {
	code, remote := remoteAlert(err)
	if !remote || tc == nil || tc.ConnectionState().Version != tls.VersionTLS13 {
		return nil, false
	}
	switch code {
	case alertCertRequired, alertBadCertificate, alertUnknownCA, alertCertificateUnknown,
		alertCertificateExpired, alertCertificateRevoked, alertAccessDenied:
	default:
		return nil, false
	}
	ce := &clientCertError{late: true, err: err}
	if t.rule != nil && t.rule.Upstream.ClientCert != nil && code != alertCertRequired {
		ce.cert, ce.file = t.rule.Upstream.ClientCert.Leaf, t.rule.Upstream.ClientCertFile
	}
	return ce, true
}

// clientCertVerdict explains a *clientCertError.
func (e *upstreamError) clientCertVerdict(ce *clientCertError) verdict {
	v := verdict{reason: reasonClientCert, status: 502}
	if ce.cert == nil {
		v.cause = fmt.Sprintf("The server %s asks for a client certificate (mutual TLS) and refused the connection without one: %v. %s has no client_cert.", e.server(), ce.err, upstreamSection(e.rule))
		v.fix = fmt.Sprintf("Give tlsbridge the certificate and key the server expects: %s (with `client_key = \"client-key.pem\"` beside it).", e.setUpstream("client_cert", `"client.pem"`, true))
		return v
	}
	c := ce.cert
	v.cause = fmt.Sprintf("The server %s rejected tlsbridge's client certificate (subject %q, issuer %q, valid until %s, from %s): %v.",
		e.server(), c.Subject.String(), c.Issuer.String(), c.NotAfter.UTC().Format(time.DateOnly), ce.file, ce.err)
	if time.Now().After(c.NotAfter) {
		v.fix = fmt.Sprintf("The certificate in %s has expired: renew it, replace the file (and its key) and reload tlsbridge (kill -HUP); new connections use it at once.", ce.file)
		return v
	}
	v.fix = fmt.Sprintf("Check that the server trusts the issuer %q (nginx: ssl_client_certificate must hold that CA) and expects this subject; replace %s and its key with the certificate it expects and reload tlsbridge (kill -HUP).", c.Issuer.String(), ce.file)
	return v
}
