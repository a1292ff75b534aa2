package ca

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// PermissionError is one CA file or directory that other users can read or
// replace. It wraps ErrUnsafePermissions.
type PermissionError struct {
	What string      // "CA key" or "CA directory"
	Path string      // the file or directory
	Mode fs.FileMode // its permission bits
	Risk string      // what other users can do because of them
	Fix  string      // the command that fixes it, e.g. "chmod 600 /path/ca-key.pem"
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s %s has mode %04o: %s; fix it with: %s", e.What, e.Path, e.Mode.Perm(), e.Risk, e.Fix)
}

// Unwrap returns ErrUnsafePermissions.
func (e *PermissionError) Unwrap() error { return ErrUnsafePermissions }

// CheckPermissions reports what lets other users of the machine take over
// the CA in dir: a ca-key.pem that group or others may read (whoever reads
// it can impersonate any site to every app that trusts the CA), and a
// directory that group or others may write (they could replace ca.pem and
// ca-key.pem with a CA of their own). Each problem is a *PermissionError;
// several are joined with errors.Join, one per line. Missing files are not
// a problem here (Load reports them), and nothing is on Windows, where
// Unix modes do not apply.
//
// A directory with the sticky bit (mode 1777, like /tmp) passes: there
// nobody but a file's owner may rename or delete it, so the CA files cannot
// be swapped.
func CheckPermissions(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	var errs []error
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if m := fi.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
			errs = append(errs, &PermissionError{
				What: "CA directory", Path: dir, Mode: m,
				Risk: "other users can replace the CA files with a CA of their own",
				Fix:  "chmod 700 " + dir,
			})
		}
	}
	key := filepath.Join(dir, KeyFile)
	// Stat, not Lstat: what counts is the file a symbolic link points to.
	if fi, err := os.Stat(key); err == nil && fi.Mode().Perm()&0o077 != 0 {
		errs = append(errs, &PermissionError{
			What: "CA key", Path: key, Mode: fi.Mode(),
			Risk: "other users can read the CA private key and impersonate any site to the apps that trust the CA",
			Fix:  "chmod 600 " + key,
		})
	}
	return errors.Join(errs...)
}
