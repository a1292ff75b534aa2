package ca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// emptySystemEnv is a Linux layout whose store must not be touched.
func emptySystemEnv() systemEnv {
	return systemEnv{
		file: "/nonexistent/%s.crt",
		cmd:  []string{"update-ca-certificates"},
		install: func(*x509.Certificate) error {
			return errors.New("system store must not be touched")
		},
		uninstall: func(*x509.Certificate) error {
			return errors.New("system store must not be touched")
		},
	}
}

func systemSkipTests(*testing.T) []skipTest {
	return []skipTest{
		{"system/no-update-command", StoreSystem, nil, "apt-get install ca-certificates", nil},
		{"system/not-root", StoreSystem, func(e *trustEnv) { e.lookPath = exec.LookPath }, "needs root", ErrNeedsAdmin},
		{"system/unknown-layout", StoreSystem, func(e *trustEnv) { e.sys.file = "" }, "no known system trust store layout", ErrNoSystemStore},
	}
}

// fakeSystem is a system store in a temp dir: install writes the anchor
// and rebuilds the bundle from the anchors, like update-ca-certificates.
type fakeSystem struct {
	dir, bundle string
	silent      bool // report success without doing anything, like truststore can
}

func newFakeSystem(t *testing.T, env *trustEnv) *fakeSystem {
	f := &fakeSystem{dir: t.TempDir()}
	f.bundle = filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(f.bundle, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env.sys.file = filepath.Join(f.dir, "%s.crt")
	env.sys.bundles = []string{f.bundle}
	env.admin = true
	env.lookPath = func(string) (string, error) { return "/usr/sbin/update-ca-certificates", nil }
	env.sys.install = func(c *x509.Certificate) error {
		if f.silent {
			return nil
		}
		name := fmtAnchor(env, c)
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
			return err
		}
		return f.rebuild()
	}
	env.sys.uninstall = func(c *x509.Certificate) error {
		if err := os.Remove(fmtAnchor(env, c)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return f.rebuild()
	}
	return f
}

func fmtAnchor(env *trustEnv, c *x509.Certificate) string {
	st, err := env.openSystem(c, false)
	if err != nil {
		panic(err)
	}
	return st.where()
}

func (f *fakeSystem) rebuild() error {
	files, _ := filepath.Glob(filepath.Join(f.dir, "*.crt"))
	var all []byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		all = append(all, b...)
	}
	return os.WriteFile(f.bundle, all, 0o644)
}

func TestSystemStoreLifecycle(t *testing.T) {
	a := testAuthority(t)
	env := emptyEnv()
	f := newFakeSystem(t, env)
	storeLifecycle(t, env, a, testAuthority(t), StoreSystem, filepath.Join(f.dir, trustNameFile(a)))
}

func trustNameFile(a *Authority) string {
	return strings.ReplaceAll(trustName(a.Cert), " ", "_") + ".crt"
}

// truststore returns nil from Install when it did nothing; Install must
// notice and say so.
func TestSystemStoreSilentSuccessIsAFailure(t *testing.T) {
	a := testAuthority(t)
	env := emptyEnv()
	newFakeSystem(t, env).silent = true
	res, err := a.installWith(env, TrustOptions{Stores: []Store{StoreSystem}})
	if len(res) != 1 || res[0].Outcome != Failed || !errors.Is(err, ErrStoreFailed) {
		t.Errorf("install with a store that ignores it = %v, %v, want Failed and ErrStoreFailed", res, err)
	}
}
