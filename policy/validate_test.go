package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// errorTests are configs with exactly one problem; want is a substring of
// the one message, which must start with "config.toml" and name the key.
var errorTests = []struct {
	name   string
	config string
	want   string
	class  error
}{
	// Syntax and types.
	{"syntax", "listen = \n", `config.toml:1: listen: expected value`, ErrSyntax},
	{"type", "connect_ports = [\"443\"]\n", `config.toml:1: connect_ports: incompatible types`, ErrSyntax},
	{"type/unquoted-version", "[upstream]\nmin_tls = 1.2\n", `config.toml:2: upstream.min_tls: 1.2 is a number; write it as a string: "1.2"`, ErrSyntax},
	{"type/unquoted-version-comment", "[client]\nmax_tls = 1.3 # newest\n", `config.toml:2: client.max_tls: 1.3 is a number; write it as a string: "1.3"`, ErrSyntax},
	{"type/unquoted-rule-version", "[[rule]]\nhosts = [\"a\"]\n[[rule]]\nhosts = [\"b\"]\n[rule.upstream]\nmin_tls = 1.0\n", `config.toml:6: rule[1].upstream.min_tls: 1.0 is a number; write it as a string: "1.0"`, ErrSyntax},
	{"type/unquoted-listener-version", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\nmin_tls = 1.2\n", `config.toml:5: listener[0].upstream.min_tls: 1.2 is a number; write it as a string: "1.2"`, ErrSyntax},
	{"type/quoted-bool", "[upstream]\nverify = \"true\"\n", `config.toml:2: upstream.verify: "true" is a string; write it as a boolean: true`, ErrSyntax},
	{"type/quoted-number", "[limits]\nmax_connections = \"100\"\n", `config.toml:2: limits.max_connections: "100" is a string; write it as a number: 100`, ErrSyntax},
	{"type/string-for-list", "connect_ports = \"443\"\n", `config.toml:1: connect_ports: "443" is a string; write it as a list: [443]`, ErrSyntax},
	{"type/string-for-hosts", "[[rule]]\nhosts = \"a.example\"\n", `config.toml:2: rule[0].hosts: "a.example" is a string; write it as a list: ["a.example"]`, ErrSyntax},
	{"listener-contract-both", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\n[listener.upstream]\nca_files = []\n", `config.toml:4: listener: Key 'listener.upstream' has already been defined; a [[listener]] names its target either as upstream = "host:port" or as address = "host:port" inside [listener.upstream]`, ErrSyntax},
	{"listener-upstream-type", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = 443\n", `config.toml: listener[0].upstream: want a "host:port" string`, ErrSyntax},

	// Unknown keys, everywhere.
	{"unknown/top", "lisen = \"127.0.0.1:1\"\n", `config.toml: unknown key "lisen" (valid keys: listen, allow_clients, connect_ports, ca, client, upstream, log, admin, limits, auth, rule, listener); did you mean "listen"?`, ErrUnknownKey},
	{"unknown/table", "[upstrem]\nmin_tls = \"1.2\"\n", `unknown key "upstrem" (valid keys:`, ErrUnknownKey},
	{"unknown/in-upstream", "[upstream]\naddress = \"a:1\"\n", `unknown key "upstream.address" (valid keys: min_tls, max_tls, verify, ca_files, proxy, proxy_auth_file, client_cert, client_key, fetch_intermediates)`, ErrUnknownKey},
	{"unknown/in-ca", "[ca]\nleafkey = \"auto\"\n", `unknown key "ca.leafkey" (valid keys: dir, leaf_key, permitted_hosts); did you mean "leaf_key"?`, ErrUnknownKey},
	{"unknown/rule", "[[rule]]\nhosts = [\"a\"]\n[[rule]]\nhosts = [\"b\"]\nhost = \"c\"\n", `unknown key "rule[1].host" (valid keys: hosts, ports, action, client, upstream); did you mean "hosts"?`, ErrUnknownKey},
	{"unknown/rule-subtable", "[[rule]]\nhosts = [\"a\"]\n[rule.upstrem]\nmin_tls = \"1.3\"\n", `unknown key "rule[0].upstrem" (valid keys: hosts, ports, action, client, upstream); did you mean "upstream"?`, ErrUnknownKey},
	{"unknown/rule-upstream", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nsni = \"x\"\n", `unknown key "rule[0].upstream.sni" (valid keys: min_tls, max_tls, verify, ca_files, proxy, proxy_auth_file, client_cert, client_key, fetch_intermediates, address, server_name)`, ErrUnknownKey},
	{"unknown/rule-client", "[[rule]]\nhosts = [\"a\"]\n[rule.client]\nverify = false\n", `unknown key "rule[0].client.verify" (valid keys: min_tls, max_tls)`, ErrUnknownKey},
	{"unknown/listener", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nclienttls = true\n", `unknown key "listener[0].clienttls" (valid keys: listen, upstream, client_tls, upstream_tls, server_name, alpn, client); did you mean "client_tls"?`, ErrUnknownKey},
	{"unknown/listener-upstream", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\nmintls = \"1.2\"\n", `unknown key "listener[0].upstream.mintls" (valid keys: min_tls, max_tls, verify, ca_files, proxy, proxy_auth_file, client_cert, client_key, fetch_intermediates, address, server_name); did you mean "min_tls"?`, ErrUnknownKey},
	{"unknown/inline-rules", "rule = [{hosts = [\"a\"]}, {hosts = [\"b\"], acton = \"deny\"}]\n", `unknown key "rule[1].acton"`, ErrUnknownKey},

	// TLS versions.
	{"version/client.min", "[client]\nmin_tls = \"1.4\"\n", `config.toml: client.min_tls: "1.4" is not a TLS version (want 1.0, 1.1, 1.2 or 1.3)`, ErrTLSVersion},
	{"version/upstream.max", "[upstream]\nmax_tls = \"TLS1.3\"\n", `config.toml: upstream.max_tls: "TLS1.3" is not a TLS version`, ErrTLSVersion},
	{"version/upstream-ssl3", "[upstream]\nmin_tls = \"3.0\"\n", `config.toml: upstream.min_tls: "3.0" is not a TLS version (want 1.0, 1.1, 1.2 or 1.3); SSL 3.0 and older are not supported`, ErrTLSVersion},
	{"version/upstream-below-1.0", "[upstream]\nmin_tls = \"0.9\"\n", `config.toml: upstream.min_tls: "0.9" is not a TLS version`, ErrTLSVersion},
	{"version/rule", "[[rule]]\nhosts = [\"a\"]\n[[rule]]\nhosts = [\"b\"]\n[[rule]]\nhosts = [\"c\"]\n[rule.upstream]\nmin_tls = \"1.4\"\n", `config.toml: rule[2].upstream.min_tls: "1.4" is not a TLS version (want 1.0, 1.1, 1.2 or 1.3)`, ErrTLSVersion},
	{"version/rule-client", "[[rule]]\nhosts = [\"a\"]\n[rule.client]\nmax_tls = \"2\"\n", `config.toml: rule[0].client.max_tls: "2" is not a TLS version`, ErrTLSVersion},
	{"version/listener", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\nmax_tls = \"1.5\"\n", `config.toml: listener[0].upstream.max_tls: "1.5" is not a TLS version`, ErrTLSVersion},
	{"min>max/client", "[client]\nmin_tls = \"1.3\"\nmax_tls = \"1.2\"\n", `config.toml: client.min_tls: "1.3" is above max_tls "1.2"`, ErrTLSVersion},
	{"min>max/upstream", "[upstream]\nmin_tls = \"1.3\"\nmax_tls = \"1.2\"\n", `config.toml: upstream.min_tls: "1.3" is above max_tls "1.2"`, ErrTLSVersion},
	{"min>max/rule-min-vs-global-max", "[upstream]\nmax_tls = \"1.2\"\n[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nmin_tls = \"1.3\"\n", `config.toml: rule[0].upstream.min_tls: "1.3" is above max_tls "1.2"`, ErrTLSVersion},
	{"min>max/rule-max-vs-global-min", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nmax_tls = \"1.1\"\n", `config.toml: rule[0].upstream.max_tls: "1.1" is below min_tls "1.2"`, ErrTLSVersion},
	{"min>max/rule-client", "[client]\nmin_tls = \"1.2\"\n[[rule]]\nhosts = [\"a\"]\n[rule.client]\nmax_tls = \"1.0\"\n", `config.toml: rule[0].client.max_tls: "1.0" is below min_tls "1.2"`, ErrTLSVersion},
	{"min>max/listener", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\nmax_tls = \"1.0\"\n", `config.toml: listener[0].upstream.max_tls: "1.0" is below min_tls "1.2"`, ErrTLSVersion},

	// Top level.
	{"allow_clients", "allow_clients = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n", `config.toml: allow_clients[1]: "10.0.0.0/33" is not a CIDR or IP address`, ErrInvalid},
	{"allow_clients/name", "allow_clients = [\"lan\"]\n", `config.toml: allow_clients[0]: "lan" is not a CIDR`, ErrInvalid},
	{"connect_ports/zero", "connect_ports = [0]\n", `config.toml: connect_ports[0]: 0 is not a TCP port (want 1 to 65535)`, ErrInvalid},
	{"connect_ports/big", "connect_ports = [443, 65536]\n", `config.toml: connect_ports[1]: 65536 is not a TCP port`, ErrInvalid},
	{"connect_ports/negative", "connect_ports = [-1]\n", `config.toml: connect_ports[0]: -1 is not a TCP port`, ErrInvalid},
	{"listen/not-host-port", "listen = \"3128\"\n", `config.toml: listen: "3128" is not host:port`, ErrInvalid},
	{"listen/bad-port", "listen = \"127.0.0.1:http\"\n", `config.toml: listen: "127.0.0.1:http" has no valid port`, ErrInvalid},
	{"listen/0.0.0.0", "listen = \"0.0.0.0:3128\"\n", `config.toml: listen: "0.0.0.0:3128" is not a loopback address; set allow_clients to the client networks allowed to use the proxy (e.g. ["10.0.0.0/8"]) or listen on 127.0.0.1`, ErrNotLoopback},
	{"listen/empty-host", "listen = \":3128\"\n", `config.toml: listen: ":3128" is not a loopback address; set allow_clients`, ErrNotLoopback},
	{"listen/ipv6-any", "listen = \"[::]:3128\"\n", `config.toml: listen: "[::]:3128" is not a loopback address`, ErrNotLoopback},
	{"listen/lan", "listen = \"192.168.1.5:3128\"\n", `config.toml: listen: "192.168.1.5:3128" is not a loopback address`, ErrNotLoopback},
	{"admin.listen/open", "[admin]\nlisten = \"0.0.0.0:3129\"\n", `config.toml: admin.listen: "0.0.0.0:3129" is not a loopback address; set allow_clients`, ErrNotLoopback},
	{"admin.listen/bad", "[admin]\nlisten = \"localhost\"\n", `config.toml: admin.listen: "localhost" is not host:port`, ErrInvalid},
	{"ca.leaf_key", "[ca]\nleaf_key = \"rsa4096\"\n", `config.toml: ca.leaf_key: "rsa4096" is not a leaf key type (want auto, rsa2048 or ecdsa-p256)`, ErrInvalid},
	{"ca.permitted_hosts", "[ca]\npermitted_hosts = [\"*.example.com\"]\n", `config.toml: ca.permitted_hosts[0]: "*.example.com"`, ErrInvalid},
	{"log.format", "[log]\nformat = \"xml\"\n", `config.toml: log.format: "xml" is not a log format (want text or json)`, ErrInvalid},
	{"log.level", "[log]\nlevel = \"verbose\"\n", `config.toml: log.level: "verbose" is not a log level (want trace, debug, info, warn or error)`, ErrInvalid},

	// Rules.
	{"rule/hosts-missing", "[[rule]]\naction = \"deny\"\n", `config.toml: rule[0].hosts: missing: a rule needs at least one host glob`, ErrInvalid},
	{"rule/hosts-empty", "[[rule]]\nhosts = []\n", `config.toml: rule[0].hosts: empty: a rule needs at least one host glob`, ErrInvalid},
	{"rule/glob-middle", "[[rule]]\nhosts = [\"ok.example\", \"api.*.com\"]\n", `config.toml: rule[0].hosts[1]: "api.*.com": '*' is only allowed alone or as the whole first label`, ErrInvalid},
	{"rule/glob-partial", "[[rule]]\nhosts = [\"a*b.com\"]\n", `config.toml: rule[0].hosts[0]: "a*b.com": '*' is only allowed`, ErrInvalid},
	{"rule/glob-partial-label", "[[rule]]\nhosts = [\"*foo.example.com\"]\n", `config.toml: rule[0].hosts[0]: "*foo.example.com": '*' is only allowed`, ErrInvalid},
	{"rule/glob-double", "[[rule]]\nhosts = [\"*.*.example.com\"]\n", `config.toml: rule[0].hosts[0]: "*.*.example.com": '*' is only allowed as the whole first label`, ErrInvalid},
	{"rule/glob-empty", "[[rule]]\nhosts = [\"\"]\n", `config.toml: rule[0].hosts[0]: empty host glob`, ErrInvalid},
	{"rule/glob-port", "[[rule]]\nhosts = [\"api.example.com:443\"]\n", `config.toml: rule[0].hosts[0]: "api.example.com:443": host globs take no port; list ports in the rule's ports key`, ErrInvalid},
	{"rule/glob-cidr", "[[rule]]\nhosts = [\"10.0.0.0/40\"]\n", `config.toml: rule[0].hosts[0]: "10.0.0.0/40" is not a CIDR`, ErrInvalid},
	{"rule/glob-space", "[[rule]]\nhosts = [\"bad host\"]\n", `config.toml: rule[0].hosts[0]: "bad host": not a valid host name`, ErrInvalid},
	{"rule/glob-wild-ip", "[[rule]]\nhosts = [\"*.10.0.0.1\"]\n", `config.toml: rule[0].hosts[0]: "*.10.0.0.1": a wildcard cannot apply to an IP address`, ErrInvalid},
	{"rule/ports", "[[rule]]\nhosts = [\"a\"]\nports = [443, 0]\n", `config.toml: rule[0].ports[1]: 0 is not a TCP port`, ErrInvalid},
	{"rule/action", "[[rule]]\nhosts = [\"a\"]\naction = \"allow\"\n", `config.toml: rule[0].action: "allow" is not an action (want auto, bump, tunnel or deny)`, ErrAction},
	{"rule/address", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\naddress = \"10.0.0.1\"\n", `config.toml: rule[0].upstream.address: "10.0.0.1" is not host:port`, ErrInvalid},
	{"rule/address-port", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\naddress = \"10.0.0.1:0\"\n", `config.toml: rule[0].upstream.address: "10.0.0.1:0" has no valid port`, ErrInvalid},
	{"rule/address-nohost", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\naddress = \":443\"\n", `config.toml: rule[0].upstream.address: ":443" is not host:port`, ErrInvalid},
	{"rule/server_name", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nserver_name = \"a.example:443\"\n", `config.toml: rule[0].upstream.server_name: "a.example:443" is not a host name`, ErrInvalid},

	// Listeners.
	{"listener/listen-missing", "[[listener]]\nupstream = \"a:443\"\n", `config.toml: listener[0].listen: missing`, ErrInvalid},
	{"listener/upstream-missing", "[[listener]]\nlisten = \"127.0.0.1:1\"\n", `config.toml: listener[0].upstream: missing`, ErrInvalid},
	{"listener/upstream-bad", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"legacy.example\"\n", `config.toml: listener[0].upstream: "legacy.example" is not host:port`, ErrInvalid},
	{"listener/address-bad", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"legacy.example:99999\"\n", `config.toml: listener[0].upstream.address: "legacy.example:99999" has no valid port`, ErrInvalid},
	{"listener/listen-bad", "[[listener]]\nlisten = \"8080\"\nupstream = \"a:443\"\n", `config.toml: listener[0].listen: "8080" is not host:port`, ErrInvalid},
	{"listener/listen-open", "[[listener]]\nlisten = \"0.0.0.0:8080\"\nupstream = \"a:443\"\n", `config.toml: listener[0].listen: "0.0.0.0:8080" is not a loopback address; set allow_clients`, ErrNotLoopback},
	{"unknown/listener-client", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\n[listener.client]\nverify = false\n", `unknown key "listener[0].client.verify" (valid keys: min_tls, max_tls)`, ErrUnknownKey},
	{"listener/upstream_tls-without-client_tls", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"127.0.0.1:8080\"\nupstream_tls = false\n", `config.toml: listener[0].upstream_tls: false needs client_tls = true`, ErrInvalid},
	{"listener/upstream_tls-client_tls-false", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"127.0.0.1:8080\"\nclient_tls = false\nupstream_tls = false\n", `config.toml: listener[0].upstream_tls: false needs client_tls = true`, ErrInvalid},
	{"listener/upstream_tls-type", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nupstream_tls = \"no\"\n", `upstream_tls`, ErrSyntax},
	{"listener/alpn-empty-list", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nalpn = []\n", `config.toml: listener[0].alpn: empty: list the protocols to pin`, ErrInvalid},
	{"listener/alpn-empty-name", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nalpn = [\"h2\", \"\"]\n", `config.toml: listener[0].alpn[1]: empty protocol name`, ErrInvalid},
	{"listener/alpn-too-long", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nalpn = [\"" + strings.Repeat("x", 256) + "\"]\n", `config.toml: listener[0].alpn[0]: protocol name of 256 bytes is too long (ALPN allows at most 255)`, ErrInvalid},
	{"listener/alpn-duplicate", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nalpn = [\"h2\", \"http/1.1\", \"h2\"]\n", `config.toml: listener[0].alpn[2]: "h2" is listed twice`, ErrInvalid},
	{"listener/alpn-type", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\nalpn = \"h2\"\n", `alpn`, ErrSyntax},
	{"listener/client-version", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\n[listener.client]\nmin_tls = \"1.4\"\n", `config.toml: listener[0].client.min_tls: "1.4" is not a TLS version`, ErrTLSVersion},
	{"listener/client-inverted", "[client]\nmax_tls = \"1.1\"\n[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\n[listener.client]\nmin_tls = \"1.2\"\n", `config.toml: listener[0].client.min_tls: "1.2" is above max_tls "1.1"`, ErrTLSVersion},
	{"listener/server_name-conflict", "[[listener]]\nlisten = \"127.0.0.1:1\"\nserver_name = \"a.example\"\n[listener.upstream]\naddress = \"a:443\"\nserver_name = \"b.example\"\n", `config.toml: listener[0].upstream.server_name: "b.example" differs from listener[0].server_name "a.example"; set only one`, ErrInvalid},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config), "config.toml")
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tt.config, tt.want)
			}
			msgs := lines(err)
			if len(msgs) != 1 {
				t.Errorf("Parse(%q) gave %d problems, want 1:\n%v", tt.config, len(msgs), err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error =\n%v\nwant it to contain\n%s", tt.config, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "config.toml") {
				t.Errorf("error %q does not start with the file name", err)
			}
			if !errors.Is(err, tt.class) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.class)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Errorf("errors.As(%v, *KeyError) = false", err)
			}
		})
	}
}

// Allowed configs that look suspicious but are explicit opt-ins.
func TestParseAccepts(t *testing.T) {
	tests := []struct{ name, config string }{
		{"verify-false-rule", "[[rule]]\nhosts = [\"self-signed.example\"]\n[rule.upstream]\nverify = false\n"},
		{"verify-false-listener", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\n[[listener]]\nlisten = \"127.0.0.1:2\"\n[listener.upstream]\naddress = \"a:443\"\nverify = false\n"},
		{"open-with-allow_clients", "listen = \"0.0.0.0:3128\"\nallow_clients = [\"10.0.0.0/8\"]\n[admin]\nlisten = \":3129\"\n"},
		{"localhost", "listen = \"localhost:3128\"\n"},
		{"ipv6-loopback", "listen = \"[::1]:3128\"\n"},
		{"port-zero-listen", "listen = \"127.0.0.1:0\"\n"},
		{"upstream-legacy-min", "[[rule]]\nhosts = [\"old.example\"]\n[rule.upstream]\nmin_tls = \"1.0\"\n"},
		{"equal-min-max", "[upstream]\nmin_tls = \"1.3\"\nmax_tls = \"1.3\"\n"},
		{"underscore-host", "[[rule]]\nhosts = [\"my_host.corp.example\"]\n"},
		{"unicode-host", "[[rule]]\nhosts = [\"*.bücher.example\", \"[::1]\", \"fe80::1%eth0\", \"::ffff:10.0.0.0/104\"]\n"},
		{"empty-connect_ports", "connect_ports = []\n"},
		{"ca-dir-empty", "[ca]\ndir = \"\"\n"},
		{"comments", "# only a comment\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.config), "config.toml"); err != nil {
				t.Errorf("Parse(%q) error = %v, want nil", tt.config, err)
			}
		})
	}
}

// Every problem is reported in one run, in file order.
func TestParseReportsAllProblems(t *testing.T) {
	config := `
listen = "0.0.0.0:3128"
connect_ports = [443, 70000]
lisen = "x"
[ca]
leaf_key = "rsa"
[client]
min_tls = "9"
[log]
format = "xml"
level = "loud"
[admin]
listen = "0.0.0.0:1"
[[rule]]
hosts = ["api.*.com"]
action = "bumpp"
[rule.upstrem]
min_tls = "1.3"
[[rule]]
hosts = []
[rule.upstream]
min_tls = "1.4"
address = "nope"
[[listener]]
listen = "0.0.0.0:8080"
upstream = "x"
`
	_, err := Parse([]byte(config), "config.toml")
	want := []string{
		`config.toml: unknown key "lisen"`,
		`config.toml: unknown key "rule[0].upstrem"`,
		`config.toml: listen: "0.0.0.0:3128" is not a loopback address`,
		`config.toml: connect_ports[1]: 70000 is not a TCP port`,
		`config.toml: ca.leaf_key: "rsa"`,
		`config.toml: client.min_tls: "9"`,
		`config.toml: log.format: "xml"`,
		`config.toml: log.level: "loud"`,
		`config.toml: admin.listen: "0.0.0.0:1" is not a loopback address`,
		`config.toml: rule[0].hosts[0]: "api.*.com"`,
		`config.toml: rule[0].action: "bumpp"`,
		`config.toml: rule[1].hosts: empty`,
		`config.toml: rule[1].upstream.min_tls: "1.4"`,
		`config.toml: rule[1].upstream.address: "nope"`,
		`config.toml: listener[0].listen: "0.0.0.0:8080" is not a loopback address`,
		`config.toml: listener[0].upstream: "x" is not host:port`,
	}
	got := lines(err)
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	for _, class := range []error{ErrUnknownKey, ErrNotLoopback, ErrInvalid, ErrTLSVersion, ErrAction} {
		if !errors.Is(err, class) {
			t.Errorf("errors.Is(err, %v) = false", class)
		}
	}
}

func TestCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	writeCAPEM(t, dir, "good.pem")
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "text.pem"), []byte("not pem at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, config, want string
	}{
		{"missing", "[upstream]\nca_files = [\"good.pem\", \"missing.pem\"]\n", `upstream.ca_files[1]: "missing.pem": open ` + filepath.Join(dir, "missing.pem") + `: no such file or directory`},
		{"no-pem", "[[rule]]\nhosts = [\"a\"]\n[rule.upstream]\nca_files = [\"text.pem\"]\n", `rule[0].upstream.ca_files[0]: "text.pem": no PEM certificate in ` + filepath.Join(dir, "text.pem")},
		{"key-only", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\nca_files = [\"key.pem\"]\n", `listener[0].upstream.ca_files[0]: "key.pem": no PEM certificate`},
		{"broken-der", "[upstream]\nca_files = [\"broken.pem\"]\n", `upstream.ca_files[0]: "broken.pem": parse certificate in`},
		{"directory", "[upstream]\nca_files = [\".\"]\n", `upstream.ca_files[0]: ".": read `},
		{"empty-path", "[upstream]\nca_files = [\"\"]\n", `upstream.ca_files[0]: empty path`},
	}
	path := filepath.Join(dir, "config.toml")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config), path)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tt.config, tt.want)
			}
			if want := path + ": " + tt.want; !strings.Contains(err.Error(), want) {
				t.Errorf("Parse(%q) error =\n%v\nwant it to contain\n%s", tt.config, err, want)
			}
		})
	}
}

// With no path, messages have no file prefix but still name the key.
func TestErrorWithoutPath(t *testing.T) {
	_, err := Parse([]byte("[client]\nmin_tls = \"1.4\"\n"), "")
	want := `client.min_tls: "1.4" is not a TLS version (want 1.0, 1.1, 1.2 or 1.3)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %q", err, want)
	}
	_, err = Parse([]byte("listen = \n"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "line 1: listen: ") {
		t.Errorf("Parse error = %v, want prefix %q", err, "line 1: listen: ")
	}
}

func TestNearest(t *testing.T) {
	valid := []string{"min_tls", "max_tls", "verify", "ca_files", "address", "server_name"}
	tests := []struct{ in, want string }{
		{"mintls", "min_tls"},
		{"ca_file", "ca_files"},
		{"servername", "server_name"},
		{"Verify", "verify"},
		{"sni", ""},
		{"completely_unrelated", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := nearest(tt.in, valid); got != tt.want {
				t.Errorf("nearest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
