//go:build !windows

package ca

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// checkPermissions: group and other bits. A directory with the sticky bit
// (mode 1777, like /tmp) passes: there nobody but a file's owner may rename
// or delete it, so the CA files cannot be swapped.
func checkPermissions(dir string) error {
	var errs []error
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if m := fi.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
			errs = append(errs, &PermissionError{
				What: "CA directory", Path: dir, Mode: m,
				Risk: riskDir,
				Fix:  "chmod 700 " + dir,
			})
		}
	}
	key := filepath.Join(dir, KeyFile)
	// Stat, not Lstat: what counts is the file a symbolic link points to.
	if fi, err := os.Stat(key); err == nil && fi.Mode().Perm()&0o077 != 0 {
		errs = append(errs, &PermissionError{
			What: "CA key", Path: key, Mode: fi.Mode(),
			Risk: riskKey,
			Fix:  "chmod 600 " + key,
		})
	}
	return errors.Join(errs...)
}

// restrictDir does nothing: Save creates the directory 0700 and the key
// 0600, and an existing directory keeps the mode its owner chose
// (checkPermissions reports it).
func restrictDir(string) error { return nil }

func checkSecretFile(what, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{What: what, Path: path, Mode: fi.Mode(), Risk: riskSecret, Fix: "chmod 600 " + path}
	}
	return nil
}
