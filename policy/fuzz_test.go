package policy

import (
	"path/filepath"
	"testing"

	"github.com/tlsbridge/tlsbridge/internal/hostname"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, errors must
// say something, and a policy it accepts must be usable.
func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte(fullConfig))
	f.Add([]byte(matchConfig))
	for _, tt := range errorTests {
		f.Add([]byte(tt.config))
	}
	// One directory for every run: relative ca_files resolve inside it, and
	// a TempDir per run would dominate the time of each execution.
	path := filepath.Join(f.TempDir(), "config.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, path)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q) returned an empty error", data)
			}
			return
		}
		if p.Default == nil || p.Upstream.RootCAs == nil {
			t.Fatalf("Parse(%q) = %+v: missing Default or RootCAs", data, p)
		}
		for _, r := range p.Rules {
			if r.Upstream.RootCAs == nil {
				t.Fatalf("Parse(%q): %s has nil RootCAs", data, r.Name)
			}
			if len(r.Hosts) == 0 {
				t.Fatalf("Parse(%q): %s has no hosts", data, r.Name)
			}
			if r.Client.MinVersion > r.Client.MaxVersion || r.Upstream.MinVersion > r.Upstream.MaxVersion {
				t.Fatalf("Parse(%q): %s has min > max: %+v %+v", data, r.Name, r.Client, r.Upstream)
			}
		}
		for _, l := range p.Listeners {
			if l.Listen == "" || l.Upstream == "" {
				t.Fatalf("Parse(%q): %s has no listen or upstream", data, l.Name)
			}
		}
		if !p.LoopbackOnly() && len(p.AllowClients) == 0 {
			t.Fatalf("Parse(%q): listen %q is open with no allow_clients", data, p.Listen)
		}
		for _, h := range []string{"api.example.com", "10.0.0.1", "::1", ""} {
			if p.Match(h, 443) == nil {
				t.Fatalf("Parse(%q).Match(%q) = nil", data, h)
			}
		}
	})
}

// FuzzMatch checks that Match never panics, that its allocation-free fast
// path agrees with full normalization, and that a host and its normalized
// form match the same rule.
func FuzzMatch(f *testing.F) {
	p := mustParse(f, matchConfig)
	f.Add("api.example.com", 443)
	f.Add("", 0)
	f.Add("[::1]:443", 8443)
	f.Add("WWW.BÜCHER.EXAMPLE.", 443)
	f.Add("my_host.corp", 443)
	f.Add("::ffff:10.1.2.3", 443)
	f.Add("1.2.3.4.5", 443)
	f.Add("a..example.com", 443)
	f.Fuzz(func(t *testing.T, host string, port int) {
		got := p.Match(host, port)
		if got == nil {
			t.Fatalf("Match(%q, %d) = nil", host, port)
		}
		want := p.Default
		h := slowMatchHostOf(host)
		for _, r := range p.Rules {
			if r.matches(h, port) {
				want = r
				break
			}
		}
		if got != want {
			t.Fatalf("Match(%q, %d) = %s, want %s (slow path)", host, port, got.Name, want.Name)
		}
		if n, err := hostname.Normalize(host); err == nil {
			if again := p.Match(n, port); again != got {
				t.Fatalf("Match(%q, %d) = %s, but Match(%q) = %s", host, port, got.Name, n, again.Name)
			}
		}
	})
}
