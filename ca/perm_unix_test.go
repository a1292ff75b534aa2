//go:build !windows

package ca_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
)

func TestCheckPermissions(t *testing.T) {
	for _, tt := range []struct {
		name     string
		dirMode  os.FileMode
		keyMode  os.FileMode
		wantFix  []string // "chmod ..." lines, with DIR for the CA directory
		wantMode []string
	}{
		{name: "as-created", dirMode: 0o700, keyMode: 0o600},
		{name: "traversable-dir", dirMode: 0o755, keyMode: 0o600},
		{name: "read-only-key", dirMode: 0o700, keyMode: 0o400},
		{name: "world-readable-key", dirMode: 0o700, keyMode: 0o644, wantFix: []string{"chmod 600 DIR/ca-key.pem"}, wantMode: []string{"0644"}},
		{name: "group-readable-key", dirMode: 0o700, keyMode: 0o640, wantFix: []string{"chmod 600 DIR/ca-key.pem"}, wantMode: []string{"0640"}},
		{name: "group-writable-dir", dirMode: 0o770, keyMode: 0o600, wantFix: []string{"chmod 700 DIR"}, wantMode: []string{"0770"}},
		{name: "sticky-dir", dirMode: 0o777 | os.ModeSticky, keyMode: 0o600},
		{name: "both", dirMode: 0o777, keyMode: 0o666, wantFix: []string{"chmod 700 DIR", "chmod 600 DIR/ca-key.pem"}, wantMode: []string{"0777", "0666"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			if _, err := ca.Create(dir, ca.Options{Key: ca.KeyECDSAP256}, false); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, ca.KeyFile), tt.keyMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			err := ca.CheckPermissions(dir)
			if len(tt.wantFix) == 0 {
				if err != nil {
					t.Fatalf("CheckPermissions = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ca.ErrUnsafePermissions) {
				t.Fatalf("CheckPermissions = %v, want ErrUnsafePermissions", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantFix) {
				t.Fatalf("CheckPermissions reports %d problems, want %d:\n%v", len(lines), len(tt.wantFix), err)
			}
			for i, fix := range tt.wantFix {
				fix = strings.ReplaceAll(fix, "DIR", dir)
				if !strings.HasSuffix(lines[i], "fix it with: "+fix) || !strings.Contains(lines[i], "mode "+tt.wantMode[i]) {
					t.Errorf("problem %d = %q, want its mode %s and the fix %q", i, lines[i], tt.wantMode[i], fix)
				}
			}
		})
	}
	if err := ca.CheckPermissions(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("CheckPermissions(missing dir) = %v, want nil (Load reports it)", err)
	}
}
