package ca

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

// fakeRoots is the two Windows ROOT stores as sets of DER certificates.
type fakeRoots struct {
	certs  map[rootLocation]map[string]bool
	silent bool // add reports success and does nothing
}

func newFakeRoots() *fakeRoots {
	return &fakeRoots{certs: map[rootLocation]map[string]bool{rootMachine: {}, rootUser: {}}}
}

func (f *fakeRoots) has(l rootLocation, der []byte) (bool, error) {
	return f.certs[l][string(der)], nil
}
func (f *fakeRoots) add(l rootLocation, der []byte) error {
	if !f.silent {
		f.certs[l][string(der)] = true
	}
	return nil
}

func (f *fakeRoots) remove(l rootLocation, der []byte) error {
	delete(f.certs[l], string(der))
	return nil
}

// rootEnv runs the Windows ROOT store logic over f, elevated or not.
func rootEnv(f *fakeRoots, admin bool) *trustEnv {
	env := emptyEnv()
	env.admin = admin
	env.openSys = func(c *x509.Certificate, write bool) (trustStore, error) {
		return openRootStore(f, admin, c, write)
	}
	return env
}

func TestRootStoreLifecycle(t *testing.T) {
	for _, tt := range []struct {
		name  string
		admin bool
		where string
	}{
		{"elevated", true, `LocalMachine\ROOT`},
		{"not-elevated", false, `CurrentUser\ROOT`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, other := testAuthority(t), testAuthority(t)
			f := newFakeRoots()
			env := rootEnv(f, tt.admin)
			storeLifecycle(t, env, a, other, StoreSystem, tt.where)
			// The install says when it could only use the user's store.
			f2 := newFakeRoots()
			res, err := a.installWith(rootEnv(f2, tt.admin), TrustOptions{Stores: []Store{StoreSystem}})
			if err != nil || res[0].Outcome != Installed {
				t.Fatalf("install = %v, %v", res, err)
			}
			if noted := res[0].Err != nil && strings.Contains(res[0].Err.Error(), "not elevated"); noted == tt.admin {
				t.Errorf("install note = %v, want a note exactly when not elevated", res[0].Err)
			}
		})
	}
}

// A CA in the machine's store cannot be removed without elevation; one in
// both stores is removed from both.
func TestRootStoreMachineCopy(t *testing.T) {
	a := testAuthority(t)
	f := newFakeRoots()
	f.certs[rootMachine][string(a.Cert.Raw)] = true
	f.certs[rootUser][string(a.Cert.Raw)] = true
	opts := TrustOptions{Stores: []Store{StoreSystem}}
	res, err := a.uninstallWith(rootEnv(f, false), opts)
	if res[0].Outcome != Skipped || !errors.Is(err, ErrNeedsAdmin) {
		t.Errorf("uninstall, not elevated = %v, %v, want Skipped with ErrNeedsAdmin", res, err)
	}
	if st := a.statusWith(rootEnv(f, false), opts)[0]; st.Outcome != Trusted || st.Where != `LocalMachine\ROOT, CurrentUser\ROOT` {
		t.Errorf("status = %v, want Trusted in both", st)
	}
	res, err = a.uninstallWith(rootEnv(f, true), opts)
	if err != nil || res[0].Outcome != Removed || len(f.certs[rootMachine])+len(f.certs[rootUser]) != 0 {
		t.Errorf("uninstall, elevated = %v, %v, stores %v, want both copies removed", res, err, f.certs)
	}
}

func TestRootStoreSilentAddIsAFailure(t *testing.T) {
	a := testAuthority(t)
	f := newFakeRoots()
	f.silent = true
	res, err := a.installWith(rootEnv(f, true), TrustOptions{Stores: []Store{StoreSystem}})
	if res[0].Outcome != Failed || !errors.Is(err, ErrStoreFailed) {
		t.Errorf("install into a store that ignores it = %v, %v, want Failed", res, err)
	}
}
