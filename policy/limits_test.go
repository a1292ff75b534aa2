package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaultsAndOverrides(t *testing.T) {
	p := Default()
	want := Limits{HandshakeTimeout: 10 * time.Second, UpstreamTimeout: 15 * time.Second, IdleTimeout: 5 * time.Minute,
		DrainTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10, MaxConnections: 4096, SessionLifetime: time.Hour, SessionCacheSize: 20000}
	if p.Limits != want {
		t.Errorf("Default().Limits = %+v, want %+v", p.Limits, want)
	}
	p, err := Parse([]byte("[limits]\nhandshake_timeout = \"2s\"\nmax_connections = 10\nsession_cache_size = 500\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.HandshakeTimeout != 2*time.Second || p.Limits.MaxConnections != 10 || p.Limits.IdleTimeout != 5*time.Minute ||
		p.Limits.SessionCacheSize != 500 {
		t.Errorf("Limits = %+v, want handshake 2s, 10 connections, idle default, 500 sessions", p.Limits)
	}
	for in, want := range map[string]time.Duration{`"10m"`: 10 * time.Minute, `"0s"`: 0, `"24h"`: 24 * time.Hour} {
		p, err := Parse([]byte("[limits]\nsession_lifetime = "+in+"\n"), "")
		if err != nil || p.Limits.SessionLifetime != want {
			t.Errorf("session_lifetime = %s: %v, %v; want %v", in, p.Limits.SessionLifetime, err, want)
		}
	}
}

// A valid bcrypt hash of "secret" (htpasswd -nbB alice secret).
const aliceHash = "$2y$05$2zSmTf5tw9VUVUuJbWtEqO4ILQu6gDjXr1DzwbE7WdU0yf5wCGw0e"

func TestLimitsAndAuthErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("users", "# proxy users\nalice:"+aliceHash+"\n")
	md5 := write("md5", "bob:$apr1$abcdefgh$0123456789012345678901\n")
	for _, tt := range []struct{ name, config, want string }{
		{"bad-duration", "[limits]\nhandshake_timeout = \"10\"\n", `limits.handshake_timeout: "10" is not a duration`},
		{"too-long", "[limits]\nupstream_timeout = \"1h\"\n", "limits.upstream_timeout: 1h0m0s is out of range"},
		{"header-bytes", "[limits]\nmax_header_bytes = 10\n", "limits.max_header_bytes: 10 is out of range"},
		{"connections", "[limits]\nmax_connections = 0\n", "limits.max_connections: 0 is out of range"},
		{"session-lifetime-long", "[limits]\nsession_lifetime = \"48h\"\n", "limits.session_lifetime: 48h0m0s is out of range (want 0s to 24h0m0s)"},
		{"session-lifetime-tiny", "[limits]\nsession_lifetime = \"1ms\"\n", "limits.session_lifetime: 1ms is too short (want \"0s\" for no resumption, or 10s to 24h)"},
		{"session-lifetime-negative", "[limits]\nsession_lifetime = \"-1m\"\n", "limits.session_lifetime: -1m0s is out of range"},
		{"session-cache-zero", "[limits]\nsession_cache_size = 0\n", "limits.session_cache_size: 0 is out of range (want 1 to 1000000; session_lifetime = \"0s\" turns resumption off)"},
		{"session-cache-huge", "[limits]\nsession_cache_size = 2000000\n", "limits.session_cache_size: 2000000 is out of range"},
		{"drain-delay", "[admin]\ndrain_delay = \"5\"\n", `admin.drain_delay: "5" is not a duration`},
		{"drain-delay-long", "[admin]\ndrain_delay = \"1h\"\n", "admin.drain_delay: 1h0m0s is out of range (want 0s to 5m0s)"},
		{"unknown-limit", "[limits]\nmax_conns = 5\n", `unknown key "limits.max_conns"`},
		{"users-missing", "[auth]\nusers_file = \"nope\"\n", "auth.users_file: \"nope\""},
		{"users-md5", "[auth]\nusers_file = " + quote(md5) + "\n", "not bcrypt"},
		{"realm-alone", "[auth]\nrealm = \"x\"\n", "auth.realm: set without auth.users_file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config), filepath.Join(dir, "config.toml"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.config, err, tt.want)
			}
		})
	}
	p, err := Parse([]byte("[auth]\nusers_file = \"users\"\n"), filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Auth.Enabled() || string(p.Auth.Users["alice"]) != aliceHash || p.Auth.Realm != "tlsbridge" || p.Auth.UsersFile != good {
		t.Errorf("Auth = %+v, want alice from %s, realm tlsbridge", p.Auth, good)
	}
}

func quote(s string) string { return `"` + s + `"` }
