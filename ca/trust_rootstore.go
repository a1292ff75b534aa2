package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The Windows system store (trust_windows.go), kept free of syscalls so its
// logic is tested on every OS (trust_rootstore_test.go).

// rootLocation is one of the two Windows ROOT stores.
type rootLocation uint8

const (
	// rootMachine is the machine's ROOT store, read by every account:
	// SChannel, .NET, Chrome and Edge, services running as LocalSystem or
	// as an IIS app pool. Changing it needs an elevated process.
	rootMachine rootLocation = iota + 1
	// rootUser is the current user's ROOT store, read only by programs
	// running as this user.
	rootUser
)

func (l rootLocation) String() string {
	if l == rootMachine {
		return `LocalMachine\ROOT`
	}
	return `CurrentUser\ROOT`
}

// rootStoreAPI is the part of the Windows certificate store API the ROOT
// store needs: crypt32 in trust_windows.go, a map in tests. Certificates
// are compared by their DER bytes.
type rootStoreAPI interface {
	has(l rootLocation, der []byte) (bool, error)
	add(l rootLocation, der []byte) error
	remove(l rootLocation, der []byte) error
}

// rootStore is the Windows system store: the machine's ROOT store when the
// process is elevated, the current user's otherwise. It is written
// directly rather than through truststore, whose Windows code opens the
// current user's store only (CertOpenSystemStore).
type rootStore struct {
	api    rootStoreAPI
	admin  bool
	target rootLocation   // where add writes
	found  []rootLocation // where the CA was when the store was opened
}

func openRootStore(api rootStoreAPI, admin bool, c *x509.Certificate, write bool) (trustStore, error) {
	st := &rootStore{api: api, admin: admin, target: rootUser}
	if admin {
		st.target = rootMachine
	}
	for _, l := range []rootLocation{rootMachine, rootUser} {
		ok, err := api.has(l, c.Raw)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w: %w", l, err, ErrStoreUnavailable)
		}
		if ok {
			st.found = append(st.found, l)
		}
	}
	// Install never gets here with the CA in a store (it is trusted
	// already); Uninstall does, and only an elevated process can take it
	// out of the machine's store.
	if write && !admin && slices.Contains(st.found, rootMachine) {
		return nil, fmt.Errorf("changing %s needs an elevated process: %w: %w", rootMachine, ErrNeedsAdmin, ErrStoreUnavailable)
	}
	return st, nil
}

func (st *rootStore) where() string {
	if len(st.found) == 0 {
		return st.target.String()
	}
	names := make([]string, len(st.found))
	for i, l := range st.found {
		names[i] = l.String()
	}
	return strings.Join(names, ", ")
}

// trusted reports whether either ROOT store holds the CA: Windows trusts
// it for this user either way.
func (st *rootStore) trusted(c *x509.Certificate) (bool, error) {
	for _, l := range []rootLocation{rootMachine, rootUser} {
		ok, err := st.api.has(l, c.Raw)
		if err != nil {
			return false, fmt.Errorf("read %s: %w", l, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func (st *rootStore) add(c *x509.Certificate) error { return st.api.add(st.target, c.Raw) }

// remove takes the CA out of every ROOT store it was found in.
func (st *rootStore) remove(c *x509.Certificate) error {
	var errs []error
	for _, l := range st.found {
		if err := st.api.remove(l, c.Raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l, err))
		}
	}
	return errors.Join(errs...)
}

// note says when the CA went to the current user's store only.
func (st *rootStore) note() error {
	if st.target == rootMachine {
		return nil
	}
	return fmt.Errorf("not elevated, so only in %s: programs running as this user trust the CA, services under other accounts (LocalSystem, IIS app pools) do not; an elevated install uses %s", rootUser, rootMachine)
}

// elsewhere: Group Policy and enterprise stores are not ROOT.
func (st *rootStore) elsewhere() string {
	return "another copy of it is in a ROOT store this process cannot change (certlm.msc, certmgr.msc)"
}
