package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

// Issue 13 item 5: `tlsbridge check` exits non-zero whenever the proxy
// would refuse the CONNECT or fail, with the proxy's reason.
func TestCheckExitStatusAgreesWithProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	constrained := t.TempDir()
	if _, err := ca.Create(constrained, ca.Options{Key: ca.KeyECDSAP256, PermittedHosts: catest.PermittedHosts(t, "allowed.test")}, false); err != nil {
		t.Fatal(err)
	}
	// A user who cannot read the CA key (the service's own) still gets the
	// answer: the certificate holds the constraints.
	certOnly := t.TempDir()
	if _, err := ca.Create(certOnly, ca.Options{Key: ca.KeyECDSAP256, PermittedHosts: catest.PermittedHosts(t, "allowed.test")}, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(certOnly, ca.KeyFile)); err != nil {
		t.Fatal(err)
	}
	rules := fmt.Sprintf(`
[[rule]]
hosts = ["denied.test"]
action = "deny"
[[rule]]
hosts = ["*"]
action = "auto"
[rule.upstream]
address = %q
`, closed)
	for _, tt := range []struct {
		name, config, caDir, target string
		want                        []string
	}{
		{"deny", rules, t.TempDir(), "denied.test", []string{"refused with 403", "denied by rule[0]"}},
		{"port-not-in-connect_ports", rules, t.TempDir(), "elsewhere.test:8443", []string{"refused with 403", "connect_ports"}},
		{"permitted_hosts-of-the-CA", rules, constrained, "elsewhere.test", []string{"refused with 403", "permitted_hosts"}},
		{"permitted_hosts-CA-key-unreadable", rules, certOnly, "elsewhere.test", []string{"refused with 403", "permitted_hosts"}},
		{"permitted_hosts-before-the-CA-exists", "[ca]\npermitted_hosts = [\"allowed.test\"]\n" + rules, t.TempDir(), "elsewhere.test",
			[]string{"refused with 403", "permitted_hosts", "no CA in"}},
		{"upstream-down", rules, t.TempDir(), "allowed.test", []string{"502 on its CONNECT", "could not connect", closed}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runCmd(t, context.Background(), "check", "-config", writeConfig(t, tt.config), "-ca-dir", tt.caDir, tt.target)
			if !errors.Is(err, errLegacyFails) {
				t.Errorf("check %s: err = %v, want a non-zero exit (errLegacyFails)\n%s", tt.target, err, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("check %s output lacks %q:\n%s", tt.target, w, stdout)
				}
			}
		})
	}
}
