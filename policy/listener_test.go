package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// Listener.Equal decides which listeners a reload re-opens: any setting,
// and the content of a ca_files file, counts.
func TestListenerEqual(t *testing.T) {
	dir := t.TempDir()
	writeCAPEM(t, dir, "origin.pem")
	// load reads one listener with keys of its own and of [listener.upstream].
	load := func(keys, upstream string) *Listener {
		t.Helper()
		text := "[[listener]]\nlisten = \"127.0.0.1:8443\"\n" + keys +
			"[listener.upstream]\naddress = \"api.example.com:443\"\n" + upstream
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Load(path)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return p.Listeners[0]
	}
	withCA := "ca_files = [\"origin.pem\"]\n"
	a := load("", withCA)
	tests := []struct {
		name  string
		other *Listener
		want  bool
	}{
		{"same file again", load("", withCA), true},
		{"server_name", load("server_name = \"other.example.com\"\n", withCA), false},
		{"client_tls", load("client_tls = true\n", withCA), false},
		{"alpn", load("alpn = [\"h2\"]\n", withCA), false},
		{"upstream min_tls", load("", withCA+"min_tls = \"1.3\"\n"), false},
		{"no ca_files", load("", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.Equal(tt.other); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("ca_files content", func(t *testing.T) {
		writeCAPEM(t, dir, "origin.pem") // a new certificate under the same name
		if a.Equal(load("", withCA)) {
			t.Error("Equal = true after origin.pem changed, want false")
		}
	})
}
