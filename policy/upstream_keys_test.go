package policy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeClientPair writes a self-signed client certificate and its key
// (mode keyMode) to dir as name.pem and name-key.pem.
func writeClientPair(tb testing.TB, dir, name string, keyMode os.FileMode) (certFile, keyFile string) {
	tb.Helper()
	der, key := selfSigned(tb, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "policy test client " + name},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(tb, certFile, "CERTIFICATE", der, 0o644)
	writePEM(tb, keyFile, "PRIVATE KEY", kder, keyMode)
	return certFile, keyFile
}

// The issue 15 keys: parent proxy, its credentials, the client
// certificate and fetch_intermediates, each parsed once, inherited by
// rules and listeners, and overridden per rule.
func TestUpstreamParentAndClientCert(t *testing.T) {
	dir := t.TempDir()
	writeClientPair(t, dir, "client", 0o600)
	if err := os.WriteFile(filepath.Join(dir, "proxy-auth"), []byte("alice:s3cr:et\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `
[upstream]
proxy = "http://proxy.corp.example:8080"
proxy_auth_file = "proxy-auth"

[[rule]]
hosts = ["intranet.example"]
[rule.upstream]
proxy = "direct"

[[rule]]
hosts = ["api.example"]
[rule.upstream]
client_cert = "client.pem"
client_key = "client-key.pem"
fetch_intermediates = true

[[rule]]
hosts = ["other.example"]
[rule.upstream]
proxy = "http://10.1.2.3:3128"

[[listener]]
listen = "127.0.0.1:8080"
[listener.upstream]
address = "api.example:443"
client_cert = "client.pem"
client_key = "client-key.pem"
`
	p, err := Parse([]byte(cfg), filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cr:et"))
	if pp := p.Upstream.Proxy; pp == nil || pp.Addr != "proxy.corp.example:8080" || pp.Authorization != want || pp.String() != "http://proxy.corp.example:8080" {
		t.Fatalf("upstream proxy = %+v", pp)
	}
	if p.Default.Upstream.Proxy != p.Upstream.Proxy || p.Upstream.FetchIntermediates {
		t.Errorf("default rule: proxy %v, fetch_intermediates %v", p.Default.Upstream.Proxy, p.Upstream.FetchIntermediates)
	}
	if p.Rules[0].Upstream.Proxy != nil {
		t.Errorf("rule[0] proxy = direct, got %v", p.Rules[0].Upstream.Proxy)
	}
	r1 := p.Rules[1].Upstream
	if r1.ClientCert == nil || r1.ClientCert.Leaf == nil || !r1.FetchIntermediates || r1.Proxy != p.Upstream.Proxy {
		t.Errorf("rule[1] = %+v", r1)
	}
	if pp := p.Rules[2].Upstream.Proxy; pp == nil || pp.Addr != "10.1.2.3:3128" || pp.Authorization != "" {
		t.Errorf("rule[2]'s own proxy must not inherit the global credentials: %+v", pp)
	}
	if l := p.Listeners[0].UpstreamTLS; l.ClientCert == nil || l.Proxy == nil {
		t.Errorf("listener upstream = %+v", l)
	}
	for _, w := range p.Warnings() {
		if strings.Contains(w.String(), "s3cr") {
			t.Errorf("warning carries the password: %s", w)
		}
	}
	// A reload of the same files is the same listener, and so is one with
	// a renewed certificate: the running listener is kept and its new
	// connections use the new certificate (bump), its open ones theirs.
	p2, err := Parse([]byte(cfg), filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Listeners[0].Equal(p2.Listeners[0]) {
		t.Error("same files: listener not Equal")
	}
	writeClientPair(t, dir, "client", 0o600)
	p3, err := Parse([]byte(cfg), filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Listeners[0].Equal(p3.Listeners[0]) {
		t.Error("renewed client certificate: listener not Equal (its port would be closed)")
	}
	if sameCert := p.Listeners[0].UpstreamTLS.ClientCert.Certificate[0]; string(sameCert) == string(p3.Listeners[0].UpstreamTLS.ClientCert.Certificate[0]) {
		t.Error("the reload did not read the renewed certificate")
	}
}

// Every new key's bad values name the key, the value and the fix; the
// password never appears.
func TestUpstreamKeysErrors(t *testing.T) {
	dir := t.TempDir()
	writeClientPair(t, dir, "ok", 0o600)
	writeClientPair(t, dir, "open", 0o644)
	writeClientPair(t, dir, "ok2", 0o600)
	write := func(name, data string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, name), mode)
	}
	write("auth-open", "alice:hunter2\n", 0o644)
	write("auth-bad", "no-colon-here\n", 0o600)
	write("auth-ok", "alice:hunter2\n", 0o600)
	tests := []struct {
		name, config, want string
	}{
		{"proxy/not-url", "[upstream]\nproxy = \"proxy.corp:8080\"\n", `upstream.proxy: "proxy.corp:8080" is not a proxy URL (want "http://host:port"`},
		{"proxy/https", "[upstream]\nproxy = \"https://proxy.corp:8080\"\n", `upstream.proxy: "https://proxy.corp:8080": scheme "https" is not supported (want "http://host:port"`},
		{"proxy/no-port", "[upstream]\nproxy = \"http://proxy.corp\"\n", `upstream.proxy: "http://proxy.corp" has no port`},
		{"proxy/userinfo", "[upstream]\nproxy = \"http://alice:hunter2@proxy.corp:8080\"\n", `upstream.proxy: "http://alice:xxxxx@proxy.corp:8080" carries credentials in the URL; put user:password in a file`},
		{"proxy/path", "[upstream]\nproxy = \"http://proxy.corp:8080/x\"\n", `upstream.proxy: "http://proxy.corp:8080/x" has a path`},
		{"proxy/bad-port", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nproxy = \"http://proxy.corp:99999\"\n", `rule[0].upstream.proxy: "proxy.corp:99999" has no valid port`},
		{"proxy_auth_file/without-proxy", "[upstream]\nproxy_auth_file = \"auth-ok\"\n", `upstream.proxy_auth_file: set without a parent proxy; set proxy = "http://host:port"`},
		{"proxy_auth_file/direct", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nproxy = \"direct\"\nproxy_auth_file = \"auth-ok\"\n", `rule[0].upstream.proxy_auth_file: set without a parent proxy`},
		{"proxy_auth_file/mode", "[upstream]\nproxy = \"http://p:1\"\nproxy_auth_file = \"auth-open\"\n", `upstream.proxy_auth_file: "auth-open": proxy credentials ` + filepath.Join(dir, "auth-open") + ` has mode 0644: other users can read it and act as tlsbridge towards the server or the parent proxy; fix it with: chmod 600 `},
		{"proxy_auth_file/format", "[upstream]\nproxy = \"http://p:1\"\nproxy_auth_file = \"auth-bad\"\n", `upstream.proxy_auth_file: "auth-bad": want user:password on one line`},
		{"proxy_auth_file/missing", "[upstream]\nproxy = \"http://p:1\"\nproxy_auth_file = \"nope\"\n", `upstream.proxy_auth_file: "nope": stat `},
		{"client_cert/without-key", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nclient_cert = \"ok.pem\"\n", `rule[0].upstream.client_cert: set without client_key; set both`},
		{"client_key/without-cert", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\nclient_key = \"ok-key.pem\"\n", `listener[0].upstream.client_key: set without client_cert; set both`},
		{"client_key/mode", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nclient_cert = \"open.pem\"\nclient_key = \"open-key.pem\"\n", `rule[0].upstream.client_key: client key ` + filepath.Join(dir, "open-key.pem") + ` has mode 0644`},
		{"client_key/missing", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nclient_cert = \"ok.pem\"\nclient_key = \"nope.pem\"\n", `rule[0].upstream.client_key: stat `},
		{"client_cert/mismatch", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nclient_cert = \"ok.pem\"\nclient_key = \"ok2-key.pem\"\n", `rule[0].upstream.client_cert: client certificate `},
		{"client_cert/one-empty", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nclient_cert = \"\"\nclient_key = \"ok-key.pem\"\n", `rule[0].upstream.client_cert: client_cert and client_key must both name a file, or both be ""`},
		{"fetch_intermediates/type", "[upstream]\nfetch_intermediates = \"true\"\n", `upstream.fetch_intermediates: "true" is a string; write it as a boolean`},
		{"unknown/did-you-mean", "[upstream]\nproxy_auth_fle = \"x\"\n", `unknown key "upstream.proxy_auth_fle" (valid keys: min_tls, max_tls, verify, ca_files, proxy, proxy_auth_file, client_cert, client_key, fetch_intermediates); did you mean "proxy_auth_file"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config), filepath.Join(dir, "config.toml"))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tt.config, tt.want)
			}
			if n := len(lines(err)); n != 1 {
				t.Errorf("%d problems, want 1:\n%v", n, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error =\n%v\nwant it to contain\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error carries the password: %v", err)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Errorf("not a *KeyError: %v", err)
			}
		})
	}
}
