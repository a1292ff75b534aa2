package ca_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

func TestBackup(t *testing.T) {
	dir := t.TempDir()
	old, err := ca.Create(dir, ca.Options{Key: ca.KeyECDSAP256}, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	got, err := ca.Backup(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "ca.pem.2026-11-23T12-00-00.bak"),
		filepath.Join(dir, "ca-key.pem.2026-11-23T12-00-00.bak"),
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Backup = %q, want %q", got, want)
	}
	// Rotate, then check the backups are the old CA with the old modes.
	if _, err := ca.Create(dir, ca.Options{Key: ca.KeyECDSAP256}, true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		mode os.FileMode
	}{
		{want[0], 0o644},
		{want[1], 0o600},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, fi.Mode().Perm(), tt.mode)
		}
	}
	certPEM, keyPEM := readFile(t, want[0]), readFile(t, want[1])
	restored, err := ca.Parse(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("backup does not parse as a CA: %v", err)
	}
	if !bytes.Equal(restored.CertDER(), old.CertDER()) {
		t.Errorf("backup is not the previous CA")
	}
	// A second backup in the same second must not overwrite the first.
	if _, err := ca.Backup(dir, now); err == nil {
		t.Errorf("second Backup at the same time: error = nil, want \"already exists\"")
	}
	if !bytes.Equal(readFile(t, want[0]), certPEM) {
		t.Errorf("second Backup changed the first backup")
	}
	// Nothing to back up: no error, no files.
	if got, err := ca.Backup(t.TempDir(), now); err != nil || len(got) != 0 {
		t.Errorf("Backup of an empty dir = %q, %v, want nothing", got, err)
	}
}
