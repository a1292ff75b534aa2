package ca

import (
	"fmt"
	"io/fs"
)

// PermissionError is one CA file or directory that other users can read or
// replace. It wraps ErrUnsafePermissions.
type PermissionError struct {
	What string      // "CA key" or "CA directory"
	Path string      // the file or directory
	Mode fs.FileMode // its permission bits (Unix)
	// Grantee is, on Windows, where Unix modes mean nothing, the group
	// whose ACL entry is the problem ("Everyone", "BUILTIN\Users").
	Grantee string
	Risk    string // what other users can do because of them
	Fix     string // the command that fixes it, e.g. "chmod 600 /path/ca-key.pem"
}

func (e *PermissionError) Error() string {
	if e.Grantee != "" {
		return fmt.Sprintf("%s %s grants %s access: %s; fix it with: %s", e.What, e.Path, e.Grantee, e.Risk, e.Fix)
	}
	return fmt.Sprintf("%s %s has mode %04o: %s; fix it with: %s", e.What, e.Path, e.Mode.Perm(), e.Risk, e.Fix)
}

// Unwrap returns ErrUnsafePermissions.
func (e *PermissionError) Unwrap() error { return ErrUnsafePermissions }

// CheckPermissions reports what lets other users of the machine take over
// the CA in dir: a ca-key.pem that they may read (whoever reads it can
// impersonate any site to every app that trusts the CA), and a directory
// they may write (they could replace ca.pem and ca-key.pem with a CA of
// their own). Each problem is a *PermissionError; several are joined with
// errors.Join, one per line. Missing files are not a problem here (Load
// reports them).
//
// On Unix (perm_unix.go) that is a group or other permission bit. On
// Windows (perm_windows.go), where 0600 means nothing, it is an ACL entry
// that lets Everyone, Authenticated Users, Users, Guests or Interactive
// read the key or replace files in the directory; Save gives a directory
// it creates an ACL of its own for that reason.
func CheckPermissions(dir string) error { return checkPermissions(dir) }

// Risks, the same on every OS.
const (
	riskDir = "other users can replace the CA files with a CA of their own"
	riskKey = "other users can read the CA private key and impersonate any site to the apps that trust the CA"
)
