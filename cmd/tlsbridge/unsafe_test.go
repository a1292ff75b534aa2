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
