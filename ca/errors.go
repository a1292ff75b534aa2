package ca

import "errors"

// Sentinel errors. Functions in this package wrap them with context naming the
// file, directory or host name involved; test for them with errors.Is.
var (
	// ErrCANotFound means ca.pem or ca-key.pem is missing from the CA directory.
	ErrCANotFound = errors.New("no CA found")

	// ErrCAExists means Create (without force) found an existing ca.pem or
	// ca-key.pem and refused to overwrite it.
	ErrCAExists = errors.New("CA already exists")

	// ErrKeyMismatch means ca-key.pem is not the private key of ca.pem.
	ErrKeyMismatch = errors.New("CA private key does not match the CA certificate")

	// ErrNotCA means ca.pem is not a CA certificate (no basic constraints with
	// cA=TRUE, or a key usage without keyCertSign).
	ErrNotCA = errors.New("certificate is not a CA certificate")

	// ErrIncompleteChain means an imported sub-CA's chain does not lead,
	// signature by signature, to a self-signed root.
	ErrIncompleteChain = errors.New("incomplete CA chain")

	// ErrCAExpired means the CA certificate is no longer valid, so leaves it
	// signs would not verify.
	ErrCAExpired = errors.New("CA certificate has expired")

	// ErrUnsupportedKey means a private or public key has an algorithm this
	// package cannot use (it supports RSA and ECDSA).
	ErrUnsupportedKey = errors.New("unsupported key algorithm")

	// ErrUnknownKeyType means a KeyType value or name is not one of the
	// defined key types.
	ErrUnknownKeyType = errors.New("unknown key type")

	// ErrNoNames means a leaf was requested for an empty list of names.
	ErrNoNames = errors.New("no host names given")

	// ErrNotPermitted means a name is outside the CA's X.509 name constraints,
	// so a leaf for it would be rejected by every client.
	ErrNotPermitted = errors.New("name not permitted by the CA's name constraints")

	// ErrBadPermittedHost means a permitted_hosts entry given to
	// ParsePermittedHost is neither a domain name, an IP address nor a CIDR.
	ErrBadPermittedHost = errors.New("invalid permitted host")

	// ErrCacheClosed means Cache.Get was called after Cache.Close.
	ErrCacheClosed = errors.New("certificate cache is closed")

	// ErrUnknownStore means a trust store name is not system, nss or java.
	ErrUnknownStore = errors.New("unknown trust store")

	// ErrStoreUnavailable means a trust store cannot be used here: its tool
	// is missing, it has no database, or writing it needs root. The
	// StoreResult's error says which, and how to fix it.
	ErrStoreUnavailable = errors.New("trust store not available")

	// ErrStoreFailed means installing into or removing from a trust store
	// was attempted and did not take effect.
	ErrStoreFailed = errors.New("trust store update failed")

	// ErrNeedsAdmin means changing a trust store needs rights the process
	// does not have: root on Linux and macOS, an elevated (Run as
	// administrator) process on Windows. It comes with ErrStoreUnavailable;
	// the caller knows how to ask for the rights (sudo, an elevated prompt).
	ErrNeedsAdmin = errors.New("needs administrator rights")

	// ErrNoSystemStore means tlsbridge knows no system trust store on this
	// OS or distribution. It comes with ErrStoreUnavailable; the CA can
	// still be exported and added by hand.
	ErrNoSystemStore = errors.New("no known system trust store")

	// ErrTrustedNowhere means Install, asked for every store, could use
	// none of them. It comes with ErrStoreUnavailable; each StoreResult
	// says why its store was skipped.
	ErrTrustedNowhere = errors.New("trusted in no store")

	// ErrTrustedElsewhere means Uninstall removed the CA's entry from a
	// store but the store still trusts the CA through another entry, such
	// as the copy Debian's ca-certificates-java makes in Java's cacerts from
	// the system store. It comes with ErrStoreFailed.
	ErrTrustedElsewhere = errors.New("still trusted through another entry")

	// ErrUnsafePermissions means other users can read the CA key or
	// replace the CA files (see CheckPermissions).
	ErrUnsafePermissions = errors.New("CA files are not protected from other users")
)
