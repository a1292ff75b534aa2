package policy

import "testing"

const matchConfig = `
connect_ports = [443, 8443]

[[rule]]                      # rule[0]
hosts = ["api.example.com"]
ports = [8443]
action = "deny"

[[rule]]                      # rule[1]
hosts = ["API.Example.COM.", "exact.example.org"]
action = "bump"

[[rule]]                      # rule[2]
hosts = ["*.example.com"]
action = "tunnel"

[[rule]]                      # rule[3]
hosts = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "[::1]"]
action = "bump"

[[rule]]                      # rule[4]
hosts = ["*.bücher.example", "my_host.corp"]
action = "deny"

[[rule]]                      # rule[5]
hosts = ["*"]
ports = [8443]
action = "tunnel"
`

func TestMatch(t *testing.T) {
	p := mustParse(t, matchConfig)
	tests := []struct {
		name string
		host string
		port int
		want string // rule name
	}{
		{"exact/port-rule-first", "api.example.com", 8443, "rule[0]"},
		{"exact/other-port-falls-through", "api.example.com", 443, "rule[1]"},
		{"exact/glob-normalized", "api.example.com", 443, "rule[1]"},
		{"case", "API.EXAMPLE.com", 443, "rule[1]"},
		{"trailing-dot", "api.example.com.", 443, "rule[1]"},
		{"with-port", "api.example.com:443", 443, "rule[1]"},
		{"exact/second-host", "exact.example.org", 443, "rule[1]"},
		{"exact/no-subdomain", "www.exact.example.org", 443, "default"},
		{"wildcard/one-label", "www.example.com", 443, "rule[2]"},
		{"wildcard/deep", "a.b.c.example.com", 443, "rule[2]"},
		{"wildcard/deep-upper-dot", "A.B.Example.Com.", 443, "rule[2]"},
		{"wildcard/not-apex", "example.com", 443, "default"},
		{"wildcard/not-suffix-only", "badexample.com", 443, "default"},
		{"wildcard/not-other-tld", "www.example.com.evil", 443, "default"},
		{"cidr/v4", "10.1.2.3", 443, "rule[3]"},
		{"cidr/v4-mapped", "::ffff:10.1.2.3", 443, "rule[3]"},
		{"cidr/v4-bracketed-port", "[::ffff:10.1.2.3]:443", 443, "rule[3]"},
		{"ip/exact", "192.168.1.7", 443, "rule[3]"},
		{"ip/other", "192.168.1.8", 443, "default"},
		{"cidr/v6", "2001:db8::1", 443, "rule[3]"},
		{"cidr/v6-upper", "2001:DB8::1", 443, "rule[3]"},
		{"ip/v6-loopback-bracketed", "[::1]", 443, "rule[3]"},
		{"ip/v6-loopback", "::1", 443, "rule[3]"},
		{"ip/v6-long-form", "0:0:0:0:0:0:0:1", 443, "rule[3]"},
		{"ip/not-matched-by-names", "11.0.0.1", 443, "default"},
		{"idna/unicode", "www.bücher.example", 443, "rule[4]"},
		{"idna/punycode", "www.xn--bcher-kva.example", 443, "rule[4]"},
		{"idna/upper-unicode", "WWW.BÜCHER.EXAMPLE", 443, "rule[4]"},
		{"underscore", "my_host.corp", 443, "rule[4]"},
		{"underscore/upper", "MY_HOST.corp.", 443, "rule[4]"},
		{"star/with-port", "anything.test", 8443, "rule[5]"},
		{"star/ip-with-port", "172.16.0.1", 8443, "rule[5]"},
		{"default", "anything.test", 443, "default"},
		{"empty-host", "", 443, "default"},
		{"garbage-host", "bad host!", 443, "default"},
		{"garbage-host/star", "bad host!", 8443, "rule[5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Match(tt.host, tt.port)
			if got == nil {
				t.Fatalf("Match(%q, %d) = nil, want %s", tt.host, tt.port, tt.want)
			}
			if got.Name != tt.want {
				t.Errorf("Match(%q, %d) = %s, want %s", tt.host, tt.port, got.Name, tt.want)
			}
		})
	}
}

func TestMatchDefault(t *testing.T) {
	p := Default()
	for _, host := range []string{"example.com", "10.0.0.1", ""} {
		if got := p.Match(host, 443); got != p.Default {
			t.Errorf("Default().Match(%q) = %v, want p.Default", host, got.Name)
		}
	}
	if p.Default.Action != ActionAuto {
		t.Errorf("Default rule action = %v, want auto", p.Default.Action)
	}
}

// The first matching rule wins even when a later rule is more specific.
func TestMatchFirstWins(t *testing.T) {
	p := mustParse(t, `
[[rule]]
hosts = ["*.example.com"]
action = "tunnel"
[[rule]]
hosts = ["api.example.com"]
action = "deny"
`)
	if got := p.Match("api.example.com", 443); got.Name != "rule[0]" || got.Action != ActionTunnel {
		t.Errorf("Match(%q) = %s (%v), want rule[0] (tunnel)", "api.example.com", got.Name, got.Action)
	}
}

// Matching returns the rule with its merged settings.
func TestMatchCarriesSettings(t *testing.T) {
	p := mustParse(t, `
[[rule]]
hosts = ["legacy.example"]
[rule.upstream]
address = "127.0.0.1:9443"
server_name = "origin.example"
`)
	r := p.Match("Legacy.Example", 443)
	if r.Upstream.Address != "127.0.0.1:9443" || r.Upstream.ServerName != "origin.example" {
		t.Errorf("Match(%q).Upstream = %+v, want address and server_name of rule[0]", "Legacy.Example", r.Upstream)
	}
}

func TestMatchHostFastPath(t *testing.T) {
	hosts := []string{
		"api.example.com", "10.0.0.1", "1.2.3", "010.0.0.1", "a..b", "-a.example",
		"xn--bcher-kva.example", "xn--zz", "my_host", "a.b.c", "1234",
	}
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			if got, want := matchHostOf(h), slowMatchHostOf(h); got != want {
				t.Errorf("matchHostOf(%q) = %+v, want %+v (slow path)", h, got, want)
			}
		})
	}
}

func TestMatchNoAlloc(t *testing.T) {
	p := mustParse(t, matchConfig)
	for _, host := range []string{"api.example.com", "www.example.com", "10.1.2.3", "anything.test"} {
		allocs := testing.AllocsPerRun(100, func() { p.Match(host, 443) })
		if allocs != 0 {
			t.Errorf("Match(%q) allocates %v times per call, want 0", host, allocs)
		}
	}
}
