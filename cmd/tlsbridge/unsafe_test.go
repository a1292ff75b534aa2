package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A CA key others can read, or a CA directory others can write: run
// refuses to start and names the file, its mode and the chmod that fixes
// it; ca info shows the same as a WARNING.
func TestUnsafeCAPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix file modes do not apply on Windows")
	}
	for _, tt := range []struct {
		name             string
		dirMode, keyMode os.FileMode
		want             []string // DIR is the CA directory
	}{
		{"world-readable-key", 0o700, 0o644, []string{"DIR/ca-key.pem has mode 0644", "chmod 600 DIR/ca-key.pem"}},
		{"world-writable-dir", 0o777, 0o600, []string{"DIR has mode 0777", "chmod 700 DIR"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			if _, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, "ca-key.pem"), tt.keyMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
			// A refusal comes before listening; a run that starts ends
			// with the context and returns nil.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, err := runCmd(t, ctx, "run", "-config", cfg, "-ca-dir", dir)
			if err == nil {
				t.Fatal("run started with an unprotected CA, want a refusal")
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(err.Error(), w) {
					t.Errorf("run's error does not say %q:\n%v", w, err)
				}
			}

			out, _, err := runCmd(t, context.Background(), "ca", "info", "-ca-dir", dir)
			if err != nil {
				t.Fatalf("ca info: %v", err)
			}
			var warning string
			for line := range strings.SplitSeq(out, "\n") {
				if strings.HasPrefix(line, "WARNING") {
					warning += line + "\n"
				}
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(warning, w) {
					t.Errorf("ca info has no WARNING line saying %q:\n%s", w, out)
				}
			}
		})
	}
}

// run starts with settings that weaken it, and logs one warning for each,
// naming the key: an allow_clients that makes a non-loopback proxy open to
// everyone, an upstream min_tls below 1.2, verify = false.
func TestRunWarnsUnsafeSettings(t *testing.T) {
	cfg := writeConfig(t, `listen = "0.0.0.0:0"
allow_clients = ["0.0.0.0/0"]
[upstream]
min_tls = "1.1"
[[rule]]
hosts = ["old.example"]
[rule.upstream]
min_tls = "1.0"
verify = false
[[listener]]
listen = "127.0.0.1:0"
[listener.upstream]
address = "old.example:443"
min_tls = "1.0"
`)
	stderr, stop := startRun(t, "-config", cfg, "-ca-dir", t.TempDir())
	waitFor(t, "the proxy to listen", func() bool { return strings.Contains(stderr.String(), "tlsbridge listening") })
	stop()
	var warnings []string
	for line := range strings.SplitSeq(stderr.String(), "\n") {
		if strings.Contains(line, "level=warning") {
			warnings = append(warnings, line)
		}
	}
	for _, want := range []string{
		cfg + `: allow_clients[0]: \"0.0.0.0/0\" admits every address while listen = \"0.0.0.0:0\": tlsbridge is an open proxy for everyone who can reach that port`,
		cfg + `: upstream.min_tls: \"1.1\" lets tlsbridge speak TLS 1.1`,
		cfg + `: rule[0].upstream.verify: false: the certificates of the hosts of rule[0] (old.example) are NOT verified`,
		cfg + `: rule[0].upstream.min_tls: \"1.0\" lets tlsbridge speak TLS 1.0`,
		cfg + `: listener[0].upstream.min_tls: \"1.0\" lets tlsbridge speak TLS 1.0`,
	} {
		n := 0
		for _, w := range warnings {
			if strings.Contains(w, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d warnings say %q, want 1; warnings:\n%s", n, want, strings.Join(warnings, "\n"))
		}
	}
	if !strings.Contains(stderr.String(), "config "+cfg+": 1 rule, 1 listener") {
		t.Errorf("run does not log the config path and its counts:\n%s", stderr)
	}
}
