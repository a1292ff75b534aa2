package ca

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// BackupSuffixLayout is the time layout in a backup's file name,
// "ca.pem.2026-11-23T12-00-00.bak": RFC 3339 with dashes for colons, which
// Windows and some file managers do not allow.
const BackupSuffixLayout = "2006-01-02T15-04-05"

// Backup keeps a copy of the CA files in dir (ca.pem and ca-key.pem, those
// that exist) as "<name>.<time>.bak" next to them, with the same modes, and
// returns the paths of the copies. `tlsbridge ca init -force` calls it
// before replacing a CA, so a rotation can be undone by renaming the files
// back. It copies rather than renames, so the CA stays complete if the
// replacement fails. A backup never overwrites an existing file.
func Backup(dir string, now time.Time) ([]string, error) {
	suffix := "." + now.UTC().Format(BackupSuffixLayout) + ".bak"
	var made []string
	for _, name := range []string{CertFile, KeyFile, ChainFile} {
		src := filepath.Join(dir, name)
		if !exists(src) {
			continue
		}
		dst := src + suffix
		if err := copyFileExcl(src, dst); err != nil {
			for _, m := range made {
				os.Remove(m)
			}
			return nil, fmt.Errorf("back up %s: %w", src, err)
		}
		made = append(made, dst)
	}
	return made, nil
}

// copyFileExcl copies src to a new file dst with src's mode.
func copyFileExcl(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists (wait a second and retry)", dst)
		}
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	// Explicit: O_CREATE's mode is filtered by the umask.
	if err := out.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Sync()
}
