package ca

import (
	"errors"
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows the mode bits Go reports say nothing about who may read a
// file: its ACL does. A directory under %ProgramData% inherits an entry
// that lets BUILTIN\Users read every file in it, so a CA key written there
// with "0600" is readable by every user of the machine. Save therefore
// gives a directory it creates a protected ACL (restrictDir), and
// checkPermissions reads the ACLs.

// broadGroups are the well-known groups that stand for "other users".
var broadGroups = []struct {
	sid  windows.WELL_KNOWN_SID_TYPE
	name string
}{
	{windows.WinWorldSid, "Everyone"},
	{windows.WinAuthenticatedUserSid, `NT AUTHORITY\Authenticated Users`},
	{windows.WinBuiltinUsersSid, `BUILTIN\Users`},
	{windows.WinBuiltinGuestsSid, `BUILTIN\Guests`},
	{windows.WinInteractiveSid, `NT AUTHORITY\INTERACTIVE`},
}

const (
	// readKey is what lets a grantee read the key's bytes.
	readKey = windows.FILE_READ_DATA | windows.GENERIC_READ | windows.GENERIC_ALL
	// replaceFiles is what lets a grantee delete or rename the CA files
	// in the directory, or take the directory's ACL over. (Adding files
	// alone, which %ProgramData% grants Users, cannot replace existing
	// ones.)
	replaceFiles = fileDeleteChild | windows.GENERIC_WRITE | windows.GENERIC_ALL | windows.WRITE_DAC | windows.WRITE_OWNER | windows.DELETE
	// fileDeleteChild is FILE_DELETE_CHILD (winnt.h).
	fileDeleteChild = 0x40
	// inheritOnlyACE marks an entry that applies to children only
	// (INHERIT_ONLY_ACE, winnt.h).
	inheritOnlyACE = 0x08
)

func checkPermissions(dir string) error {
	var errs []error
	fix := icaclsFix(dir)
	if g, err := broadGrant(dir, replaceFiles); err != nil {
		errs = append(errs, err)
	} else if g != "" {
		errs = append(errs, &PermissionError{What: "CA directory", Path: dir, Grantee: g + " write", Risk: riskDir, Fix: fix})
	}
	key := filepath.Join(dir, KeyFile)
	if g, err := broadGrant(key, readKey); err != nil {
		errs = append(errs, err)
	} else if g != "" {
		errs = append(errs, &PermissionError{What: "CA key", Path: key, Grantee: g + " read", Risk: riskKey, Fix: fix})
	}
	return errors.Join(errs...)
}

// broadGrant returns the name of a broad group that path's ACL allows any
// of mask, or "" if none. A missing path is not a problem here.
func broadGrant(path string, mask windows.ACCESS_MASK) (string, error) {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the ACL of %s: %w", path, err)
	}
	dacl, _, err := sd.DACL()
	if errors.Is(err, windows.ERROR_OBJECT_NOT_FOUND) || (err == nil && dacl == nil) {
		return "Everyone (it has no ACL)", nil // no DACL, or a NULL one: full access for all
	}
	if err != nil {
		return "", fmt.Errorf("read the ACL of %s: %w", path, err)
	}
	for i := range uint32(dacl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			return "", fmt.Errorf("read the ACL of %s: entry %d: %w", path, i, err)
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || ace.Header.AceFlags&inheritOnlyACE != 0 || ace.Mask&mask == 0 {
			continue
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		for _, g := range broadGroups {
			if sid.IsWellKnown(g.sid) {
				return g.name, nil
			}
		}
	}
	return "", nil
}

// icaclsFix is the command that leaves dir and its files to the current
// user, SYSTEM and Administrators (by SID: group names are localised).
func icaclsFix(dir string) string {
	user := "%USERNAME%"
	if u, err := windows.GetCurrentProcessToken().GetTokenUser(); err == nil {
		user = "*" + u.User.Sid.String()
	}
	return fmt.Sprintf(`icacls "%s" /inheritance:r /grant:r "%s:(OI)(CI)F" "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" /T`, dir, user)
}

// restrictDir gives a directory Save has just created a protected ACL:
// full control for the current user, SYSTEM and Administrators, inherited
// by the files in it, nothing from the parent (so not %ProgramData%'s
// Users entry).
func restrictDir(dir string) error {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return fmt.Errorf("restrict %s: current user: %w", dir, err)
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;" + u.User.Sid.String() + ")")
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	return nil
}

func checkSecretFile(what, path string) error {
	g, err := broadGrant(path, readKey)
	if err != nil || g == "" {
		return err
	}
	return &PermissionError{What: what, Path: path, Grantee: g + " read", Risk: riskSecret, Fix: icaclsFix(filepath.Dir(path))}
}
