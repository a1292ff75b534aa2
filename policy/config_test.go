package policy

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
)

func TestDefault(t *testing.T) {
	p := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"Path", p.Path, ""},
		{"Listen", p.Listen, "127.0.0.1:3128"},
		{"AllowClients", len(p.AllowClients), 0},
		{"ConnectPorts", p.ConnectPorts, []int{443}},
		{"CA.Dir", p.CA.Dir, ""},
		{"CA.LeafKey", p.CA.LeafKey, LeafKeyAuto},
		{"CA.PermittedHosts", len(p.CA.PermittedHosts), 0},
		{"Client", p.Client, ClientTLS{tls.VersionTLS10, tls.VersionTLS13}},
		{"Upstream.MinVersion", p.Upstream.MinVersion, uint16(tls.VersionTLS12)},
		{"Upstream.MaxVersion", p.Upstream.MaxVersion, uint16(tls.VersionTLS13)},
		{"Upstream.Verify", p.Upstream.Verify, true},
		{"Upstream.RootCAs!=nil", p.Upstream.RootCAs != nil, true},
		{"Log", p.Log, LogConfig{Format: "text", Level: "info"}},
		{"Admin", p.Admin, AdminConfig{DrainDelay: DefaultDrainDelay}},
		{"Rules", len(p.Rules), 0},
		{"Listeners", len(p.Listeners), 0},
		{"Default.Name", p.Default.Name, "default"},
		{"Default.Action", p.Default.Action, ActionAuto},
		{"Default.Client", p.Default.Client, p.Client},
		{"Default.Upstream.MinVersion", p.Default.Upstream.MinVersion, p.Upstream.MinVersion},
		{"LoopbackOnly", p.LoopbackOnly(), true},
		{"Insecure", len(p.Insecure()), 0},
		{"Limits", p.Limits, DefaultLimits()},
		{"Auth.Enabled", p.Auth.Enabled(), false},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("Default().%s = %v, want %v", c.name, c.got, c.want)
			}
		})
	}
}

// contractDefaults writes out every default of the contract in MISSION.md
// and of README.md's [limits] and [auth].
const contractDefaults = `
listen = "127.0.0.1:3128"
allow_clients = []
connect_ports = [443]
[ca]
dir = ""
leaf_key = "auto"
permitted_hosts = []
[client]
min_tls = "1.0"
max_tls = "1.3"
[upstream]
min_tls = "1.2"
max_tls = "1.3"
verify = true
ca_files = []
[log]
format = "text"
level = "info"
[admin]
listen = ""
drain_delay = "5s"
[limits]
handshake_timeout = "10s"
upstream_timeout = "15s"
idle_timeout = "5m"
drain_timeout = "5s"
max_header_bytes = 65536
max_connections = 4096
[auth]
users_file = ""
realm = ""
`

// An empty file, a file that writes every documented default, and
// Default() describe the same policy: the built-in defaults are the
// documented ones, and absent keys keep them.
func TestParseEmptyIsDefault(t *testing.T) {
	def := Default()
	for name, config := range map[string]string{"empty": "", "contract-defaults": contractDefaults} {
		t.Run(name, func(t *testing.T) {
			got := mustParse(t, config)
			if !got.Upstream.RootCAs.Equal(def.Upstream.RootCAs) || !got.Default.Upstream.RootCAs.Equal(def.Default.Upstream.RootCAs) {
				t.Errorf("Parse(%q): root pools differ from Default()'s", config)
			}
			got.Path = "" // mustParse names the file
			// The pools are built afresh for each policy; compared above.
			got.Upstream.RootCAs, got.Default.Upstream.RootCAs = nil, nil
			want := *def
			want.Upstream.RootCAs = nil
			wantDefault := *def.Default
			wantDefault.Upstream.RootCAs = nil
			want.Default = &wantDefault
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("Parse(%q) =\n%+v\nwant Default() =\n%+v", config, got, &want)
			}
		})
	}
}

// The repository's shipped config.toml must always parse.
func TestShippedConfig(t *testing.T) {
	const path = "../config.toml"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no shipped config: %v", err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	if !p.LoopbackOnly() {
		t.Errorf("shipped config listens on %q, want a loopback address", p.Listen)
	}
	if p.Path != path {
		t.Errorf("Path = %q, want %q", p.Path, path)
	}
}

// fullConfig sets every key of the contract (and ports); origin.pem and
// other.pem are written next to it by the test.
const fullConfig = `
listen = "0.0.0.0:3128"
allow_clients = ["10.0.0.0/8", "192.168.1.7", "fd00::/8"]
connect_ports = [443, 8443]

[ca]
dir = "ca-dir"
leaf_key = "ecdsa-p256"
permitted_hosts = ["Example.COM", ".internal.example", "10.1.0.0/16", "192.0.2.7"]

[client]
min_tls = "1.0"
max_tls = "1.2"

[upstream]
min_tls = "1.2"
max_tls = "1.3"
verify = true
ca_files = ["other.pem"]

[log]
format = "json"
level = "debug"

[admin]
listen = "127.0.0.1:3129"

[[rule]]
hosts = ["*.example.com"]
ports = [443]
action = "bump"
[rule.client]
min_tls = "1.1"
[rule.upstream]
min_tls = "1.3"
max_tls = "1.3"
verify = false
ca_files = ["origin.pem"]
address = "127.0.0.1:9443"
server_name = "origin.example.com"

[[rule]]
hosts = ["10.0.0.0/8", "blocked.example.org"]
action = "deny"

[[listener]]
listen = "127.0.0.1:8080"
upstream = "legacy-api.example.com:443"
client_tls = false
server_name = "api.example.com"

[[listener]]
listen = "127.0.0.1:8081"
client_tls = true
[listener.upstream]
address = "grpc.example.com:443"
server_name = "grpc.internal.example"
min_tls = "1.3"
verify = false
ca_files = ["origin.pem"]
`

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	origin := writeCAPEM(t, dir, "origin.pem")
	other := writeCAPEM(t, dir, "other.pem")
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(fullConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	originPath := filepath.Join(dir, "origin.pem")
	otherPath := filepath.Join(dir, "other.pem")
	r0, r1 := p.Rules[0], p.Rules[1]
	l0, l1 := p.Listeners[0], p.Listeners[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"Path", p.Path, path},
		{"Listen", p.Listen, "0.0.0.0:3128"},
		{"AllowClients", p.AllowClients, []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("fd00::/8"),
		}},
		{"ConnectPorts", p.ConnectPorts, []int{443, 8443}},
		{"CA.Dir", p.CA.Dir, filepath.Join(dir, "ca-dir")},
		{"CA.LeafKey", p.CA.LeafKey, ca.KeyECDSAP256},
		{"CA.PermittedHosts", hostStrings(p.CA.PermittedHosts), []string{"example.com", ".internal.example", "10.1.0.0/16", "192.0.2.7"}},
		{"Client", p.Client, ClientTLS{tls.VersionTLS10, tls.VersionTLS12}},
		{"Upstream.CAFiles", p.Upstream.CAFiles, []string{otherPath}},
		{"Upstream.RootCAs has other", poolHas(p.Upstream.RootCAs, other), true},
		{"Upstream.RootCAs has origin", poolHas(p.Upstream.RootCAs, origin), false},
		{"Log", p.Log, LogConfig{"json", "debug"}},
		{"Admin", p.Admin, AdminConfig{Listen: "127.0.0.1:3129", DrainDelay: DefaultDrainDelay}},
		{"LoopbackOnly", p.LoopbackOnly(), false},

		{"rule[0].Name", r0.Name, "rule[0]"},
		{"rule[0].Hosts", r0.Hosts, []string{"*.example.com"}},
		{"rule[0].Ports", r0.Ports, []int{443}},
		{"rule[0].Action", r0.Action, ActionBump},
		{"rule[0].Client", r0.Client, ClientTLS{tls.VersionTLS11, tls.VersionTLS12}},
		{"rule[0].Upstream.MinVersion", r0.Upstream.MinVersion, uint16(tls.VersionTLS13)},
		{"rule[0].Upstream.MaxVersion", r0.Upstream.MaxVersion, uint16(tls.VersionTLS13)},
		{"rule[0].Upstream.Verify", r0.Upstream.Verify, false},
		{"rule[0].Upstream.CAFiles", r0.Upstream.CAFiles, []string{originPath}},
		{"rule[0].Upstream.RootCAs has origin", poolHas(r0.Upstream.RootCAs, origin), true},
		{"rule[0].Upstream.RootCAs has other", poolHas(r0.Upstream.RootCAs, other), false},
		{"rule[0].Upstream.Address", r0.Upstream.Address, "127.0.0.1:9443"},
		{"rule[0].Upstream.ServerName", r0.Upstream.ServerName, "origin.example.com"},
		{"rule[1].Action", r1.Action, ActionDeny},
		{"rule[1].Ports", len(r1.Ports), 0},
		{"rule[1].Upstream.CAFiles", r1.Upstream.CAFiles, []string{otherPath}},
		{"rule[1].Upstream.RootCAs shared", r1.Upstream.RootCAs == p.Upstream.RootCAs, true},

		{"listener[0].Name", l0.Name, "listener[0]"},
		{"listener[0].Listen", l0.Listen, "127.0.0.1:8080"},
		{"listener[0].Upstream", l0.Upstream, "legacy-api.example.com:443"},
		{"listener[0].ClientTLS", l0.ClientTLS, false},
		{"listener[0].UpstreamTLS.ServerName", l0.UpstreamTLS.ServerName, "api.example.com"},
		{"listener[0].UpstreamTLS.Verify", l0.UpstreamTLS.Verify, true},
		{"listener[0].Client", l0.Client, p.Client},
		{"listener[1].Upstream", l1.Upstream, "grpc.example.com:443"},
		{"listener[1].UpstreamTLS.Address", l1.UpstreamTLS.Address, ""},
		{"listener[1].ClientTLS", l1.ClientTLS, true},
		{"listener[1].UpstreamTLS.ServerName", l1.UpstreamTLS.ServerName, "grpc.internal.example"},
		{"listener[1].UpstreamTLS.MinVersion", l1.UpstreamTLS.MinVersion, uint16(tls.VersionTLS13)},
		{"listener[1].UpstreamTLS.Verify", l1.UpstreamTLS.Verify, false},
		{"listener[1].UpstreamTLS.RootCAs has origin", poolHas(l1.UpstreamTLS.RootCAs, origin), true},
		{"Insecure", p.Insecure(), []string{"rule[0]", "listener[1]"}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		})
	}
}

// A key in [rule.client] / [rule.upstream] / [listener.upstream] overrides
// the global one; absent keys inherit.
func TestOverrides(t *testing.T) {
	dir := t.TempDir()
	writeCAPEM(t, dir, "global.pem")
	writeCAPEM(t, dir, "rule.pem")
	config := `
[client]
min_tls = "1.1"
max_tls = "1.2"
[upstream]
min_tls = "1.2"
max_tls = "1.2"
verify = true
ca_files = ["global.pem"]

[[rule]]
hosts = ["inherit.example"]

[[rule]]
hosts = ["override.example"]
[rule.client]
max_tls = "1.3"
[rule.upstream]
max_tls = "1.3"
verify = false
ca_files = ["rule.pem"]

[[rule]]
hosts = ["nocafiles.example"]
[rule.upstream]
ca_files = []

[[listener]]
listen = "127.0.0.1:8080"
[listener.upstream]
address = "a.example:443"
min_tls = "1.1"
`
	p, err := Parse([]byte(config), filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	global := filepath.Join(dir, "global.pem")
	tests := []struct {
		name      string
		got, want any
	}{
		{"inherit/client", p.Rules[0].Client, ClientTLS{tls.VersionTLS11, tls.VersionTLS12}},
		{"inherit/upstream.min", p.Rules[0].Upstream.MinVersion, uint16(tls.VersionTLS12)},
		{"inherit/upstream.max", p.Rules[0].Upstream.MaxVersion, uint16(tls.VersionTLS12)},
		{"inherit/verify", p.Rules[0].Upstream.Verify, true},
		{"inherit/ca_files", p.Rules[0].Upstream.CAFiles, []string{global}},
		{"inherit/action", p.Rules[0].Action, ActionAuto},
		{"override/client", p.Rules[1].Client, ClientTLS{tls.VersionTLS11, tls.VersionTLS13}},
		{"override/upstream.min", p.Rules[1].Upstream.MinVersion, uint16(tls.VersionTLS12)},
		{"override/upstream.max", p.Rules[1].Upstream.MaxVersion, uint16(tls.VersionTLS13)},
		{"override/verify", p.Rules[1].Upstream.Verify, false},
		{"override/ca_files", p.Rules[1].Upstream.CAFiles, []string{filepath.Join(dir, "rule.pem")}},
		{"override/empty-ca_files", len(p.Rules[2].Upstream.CAFiles), 0},
		{"override/empty-ca_files/pool", p.Rules[2].Upstream.RootCAs != nil, true},
		{"listener/min", p.Listeners[0].UpstreamTLS.MinVersion, uint16(tls.VersionTLS11)},
		{"listener/max", p.Listeners[0].UpstreamTLS.MaxVersion, uint16(tls.VersionTLS12)},
		{"listener/ca_files", p.Listeners[0].UpstreamTLS.CAFiles, []string{global}},
		{"listener/client", p.Listeners[0].Client, p.Client},
		{"global unchanged", p.Upstream.MaxVersion, uint16(tls.VersionTLS12)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "etc")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeCAPEM(t, sub, "origin.pem")
	abs := writeCAPEM(t, dir, "abs.pem")
	config := `
[ca]
dir = "../ca"
[upstream]
ca_files = ["origin.pem", "` + filepath.Join(dir, "abs.pem") + `"]
`
	p, err := Parse([]byte(config), filepath.Join(sub, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.CA.Dir, filepath.Join(dir, "ca"); got != want {
		t.Errorf("CA.Dir = %q, want %q", got, want)
	}
	want := []string{filepath.Join(sub, "origin.pem"), filepath.Join(dir, "abs.pem")}
	if !slices.Equal(p.Upstream.CAFiles, want) {
		t.Errorf("Upstream.CAFiles = %q, want %q", p.Upstream.CAFiles, want)
	}
	if !poolHas(p.Upstream.RootCAs, abs) {
		t.Errorf("Upstream.RootCAs lacks the certificate of abs.pem")
	}
}

// A relative path with no config path is relative to the working directory.
func TestRelativePathsNoConfigPath(t *testing.T) {
	dir := t.TempDir()
	writeCAPEM(t, dir, "origin.pem")
	t.Chdir(dir)
	p, err := Parse([]byte("[upstream]\nca_files = [\"origin.pem\"]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Upstream.CAFiles, []string{filepath.Join(dir, "origin.pem")}; !slices.Equal(got, want) {
		t.Errorf("CAFiles = %q, want %q", got, want)
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(%q) error = %v, want os.ErrNotExist", path, err)
	}
}

func TestListenerUpstreamForms(t *testing.T) {
	tests := []struct {
		name, config string
		upstream     string
		serverName   string
	}{
		{"string", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a.example:443\"\n", "a.example:443", ""},
		{"string+server_name", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a.example:443\"\nserver_name = \"sni.example\"\n", "a.example:443", "sni.example"},
		{"table", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"b.example:443\"\nserver_name = \"sni.example\"\n", "b.example:443", "sni.example"},
		{"table+listener-server_name", "[[listener]]\nlisten = \"127.0.0.1:1\"\nserver_name = \"sni.example\"\n[listener.upstream]\naddress = \"b.example:443\"\n", "b.example:443", "sni.example"},
		{"table+same-server_name-twice", "[[listener]]\nlisten = \"127.0.0.1:1\"\nserver_name = \"sni.example\"\n[listener.upstream]\naddress = \"b.example:443\"\nserver_name = \"sni.example\"\n", "b.example:443", "sni.example"},
		{"inline", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = {address = \"c.example:443\", min_tls = \"1.3\"}\n", "c.example:443", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.config)
			l := p.Listeners[0]
			if l.Upstream != tt.upstream {
				t.Errorf("Upstream = %q, want %q", l.Upstream, tt.upstream)
			}
			if l.UpstreamTLS.ServerName != tt.serverName {
				t.Errorf("UpstreamTLS.ServerName = %q, want %q", l.UpstreamTLS.ServerName, tt.serverName)
			}
			if l.UpstreamTLS.Address != "" {
				t.Errorf("UpstreamTLS.Address = %q, want \"\" (the target is dialed)", l.UpstreamTLS.Address)
			}
		})
	}
}

// A listener's upstream of neither spelling names the key, and both fixes
// its message suggests load (STYLE 12b).
func TestListenerUpstreamWrongType(t *testing.T) {
	const head = "[[listener]]\nlisten = \"127.0.0.1:1\"\n"
	for _, value := range []string{"443", "true", `["a.example:443"]`, "2026-12-05"} {
		t.Run(value, func(t *testing.T) {
			_, err := Parse([]byte(head+"upstream = "+value+"\n"), "config.toml")
			want := `config.toml: listener[0].upstream: want a "host:port" string, e.g. upstream = "legacy-api.example.com:443", or a [listener.upstream] table with address = "host:port"`
			if err == nil || err.Error() != want || !errors.Is(err, ErrSyntax) {
				t.Errorf("upstream = %s: error = %v, want %q (ErrSyntax)", value, err, want)
			}
		})
	}
	for _, fix := range []string{"upstream = \"legacy-api.example.com:443\"\n", "[listener.upstream]\naddress = \"legacy-api.example.com:443\"\n"} {
		if _, err := Parse([]byte(head+fix), "config.toml"); err != nil {
			t.Errorf("the suggested fix %q does not load: %v", fix, err)
		}
	}
}

// The "not both" hint is added only where a listener writes upstream = ...
// and then a [listener.upstream] table; it reads the file, not the
// decoder's message.
func TestListenerUpstreamRedefined(t *testing.T) {
	const hint = `a [[listener]] names its target either as upstream = "host:port" or as address = "host:port" inside [listener.upstream], not both`
	tests := []struct {
		name, config string
		hint         bool
	}{
		{"string-then-table", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a:443\"\n[listener.upstream]\nca_files = []\n", true},
		{"indented", "[[listener]]\n  listen = \"127.0.0.1:1\"\n  upstream = \"a:443\"  # target\n  [ listener.upstream ]  # settings\n  verify = true\n", true},
		{"inline-then-table", "[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = {address = \"a:443\"}\n[listener.upstream]\nverify = true\n", true},
		{"table-twice", "[[listener]]\nlisten = \"127.0.0.1:1\"\n[listener.upstream]\naddress = \"a:443\"\n[listener.upstream]\nverify = true\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config), "config.toml")
			if err == nil || !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse error = %v, want ErrSyntax", err)
			}
			if got := strings.Contains(err.Error(), hint); got != tt.hint {
				t.Errorf("error %q: has the hint = %v, want %v", err, got, tt.hint)
			}
			if tt.hint {
				// The fix the hint names: the target as address in the table.
				fixed := strings.Replace(tt.config, "upstream = ", "# upstream = ", 1)
				if _, err := Parse([]byte(fixed+"address = \"a:443\"\n"), "config.toml"); err != nil {
					t.Errorf("the fix does not load: %v", err)
				}
			}
		})
	}
}

func TestAllowsClient(t *testing.T) {
	open := mustParse(t, `listen = "0.0.0.0:3128"
allow_clients = ["10.0.0.0/8", "2001:db8::/32"]`)
	closed := Default()
	tests := []struct {
		ip         string
		open, shut bool
	}{
		{"127.0.0.1", true, true},
		{"127.1.2.3", true, true},
		{"::1", true, true},
		{"::ffff:127.0.0.1", true, true},
		{"10.1.2.3", true, false},
		{"::ffff:10.1.2.3", true, false},
		{"2001:db8::5", true, false},
		{"192.168.1.1", false, false},
		{"11.0.0.1", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			if got := open.AllowsClient(ip); got != tt.open {
				t.Errorf("open.AllowsClient(%s) = %v, want %v", ip, got, tt.open)
			}
			if got := closed.AllowsClient(ip); got != tt.shut {
				t.Errorf("Default().AllowsClient(%s) = %v, want %v", ip, got, tt.shut)
			}
		})
	}
}

func TestAllowsPort(t *testing.T) {
	p := mustParse(t, "connect_ports = [443, 8443]")
	for _, tt := range []struct {
		port int
		want bool
	}{{443, true}, {8443, true}, {80, false}, {0, false}} {
		if got := p.AllowsPort(tt.port); got != tt.want {
			t.Errorf("AllowsPort(%d) = %v, want %v", tt.port, got, tt.want)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:3128", true},
		{"127.0.0.2:3128", true},
		{"[::1]:3128", true},
		{"localhost:3128", true},
		{"0.0.0.0:3128", false},
		{":3128", false},
		{"[::]:3128", false},
		{"10.0.0.1:3128", false},
		{"proxy.example:3128", false},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			p := &Policy{Listen: tt.listen}
			if got := p.LoopbackOnly(); got != tt.want {
				t.Errorf("LoopbackOnly() with listen %q = %v, want %v", tt.listen, got, tt.want)
			}
		})
	}
}

func TestListenerOptions(t *testing.T) {
	const head = "[client]\nmin_tls = \"1.1\"\n[[listener]]\nlisten = \"127.0.0.1:1\"\nupstream = \"a.example:443\"\n"
	tests := []struct {
		name, config  string
		clientTLS     bool
		plainUpstream bool
		alpn          []string
		client        ClientTLS
	}{
		{"defaults", head, false, false, nil, ClientTLS{tls.VersionTLS11, tls.VersionTLS13}},
		{"client_tls", head + "client_tls = true\n", true, false, nil, ClientTLS{tls.VersionTLS11, tls.VersionTLS13}},
		{"tls-front", head + "client_tls = true\nupstream_tls = false\n", true, true, nil, ClientTLS{tls.VersionTLS11, tls.VersionTLS13}},
		{"upstream_tls-true", head + "upstream_tls = true\n", false, false, nil, ClientTLS{tls.VersionTLS11, tls.VersionTLS13}},
		{"alpn", head + "client_tls = true\nalpn = [\"h2\", \"http/1.1\"]\n", true, false, []string{"h2", "http/1.1"}, ClientTLS{tls.VersionTLS11, tls.VersionTLS13}},
		{"listener.client", head + "client_tls = true\n[listener.client]\nmin_tls = \"1.0\"\nmax_tls = \"1.2\"\n", true, false, nil, ClientTLS{tls.VersionTLS10, tls.VersionTLS12}},
		{"listener.client-partial", head + "client_tls = true\n[listener.client]\nmax_tls = \"1.2\"\n", true, false, nil, ClientTLS{tls.VersionTLS11, tls.VersionTLS12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustParse(t, tt.config).Listeners[0]
			if l.ClientTLS != tt.clientTLS {
				t.Errorf("ClientTLS = %v, want %v", l.ClientTLS, tt.clientTLS)
			}
			if l.PlainUpstream != tt.plainUpstream {
				t.Errorf("PlainUpstream = %v, want %v", l.PlainUpstream, tt.plainUpstream)
			}
			if !slices.Equal(l.ALPN, tt.alpn) {
				t.Errorf("ALPN = %q, want %q", l.ALPN, tt.alpn)
			}
			if l.Client != tt.client {
				t.Errorf("Client = %v, want %v", l.Client, tt.client)
			}
		})
	}
}
