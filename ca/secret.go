package ca

import (
	"crypto/tls"
	"fmt"
	"os"
)

// riskSecret is what other users can do with a readable upstream secret.
const riskSecret = "other users can read it and act as tlsbridge towards the server or the parent proxy"

// CheckSecretFile reports a file holding a secret tlsbridge presents
// upstream — a client key (client_key) or parent-proxy credentials
// (proxy_auth_file) — that other users of the machine may read, as a
// *PermissionError naming the fix; what is "client key" or "proxy
// credentials". It is the CA key's check (CheckPermissions) for one file:
// group or other bits on Unix, a broad ACL entry on Windows. A missing
// file is not reported here; reading it is.
func CheckSecretFile(what, path string) error { return checkSecretFile(what, path) }

// LoadClientCertificate reads the client certificate (PEM, the leaf first,
// then any intermediates) and its private key (PEM) that tlsbridge
// presents to a server asking for one (mutual TLS). The key file must be
// readable by its owner only (see CheckSecretFile). The leaf is parsed, so
// Leaf is set.
func LoadClientCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	for _, f := range []string{certFile, keyFile} {
		// Only regular files: a device such as /dev/zero would never end.
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", f)
		}
	}
	if err := CheckSecretFile("client key", keyFile); err != nil {
		return nil, err
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &c, nil
}
