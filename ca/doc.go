// Package ca is tlsbridge's certificate authority: it creates or loads the
// CA in the CA directory (ca.pem and ca-key.pem, see Dir for which directory),
// signs leaf certificates for the hosts the proxy intercepts, and caches them.
// It is the only package that touches private keys.
//
// An Authority is a plain value passed to whoever needs it; there is no
// global CA. Leaves are minted through a Cache, which keeps a bounded LRU of
// them keyed by normalized host name and key type, checks expiry on every
// hit, and coalesces concurrent misses for one host into a single signature.
//
// # One leaf key per key type per process
//
// A Cache generates one ECDSA P-256 and one RSA-2048 leaf key when it is
// created and signs every leaf of that type over the same key; the keys live
// only in memory and die with the process. Generating a key per host would
// put RSA key generation (35–58 ms on the machines tlsbridge targets) on the
// handshake path, where signing a leaf for an existing key costs 0.2–0.3 ms
// with an ECDSA signature and about 2 ms with an RSA-2048 one (RSA signing,
// plus the self-check crypto/x509 runs on every signature; see
// BenchmarkMint).
//
// # An ECDSA intermediate for ECDSA leaves
//
// The default CA is RSA-2048, so that apps that verify only RSA (Windows XP,
// Java 6) can use it. Those apps get RSA leaves signed by the CA. Every
// other app gets an ECDSA leaf, and for those a Cache signs, once at
// creation, an ECDSA P-256 intermediate with the CA key and signs the
// leaves with the intermediate: a new host then costs an ECDSA signature,
// not an RSA one. The intermediate's key lives only in memory, like the
// leaf keys; it has path length 0, serverAuth as its only extended key
// usage and the CA's name constraints, and expires with the CA. The CA
// stays out of the chain the proxy serves ([leaf, intermediate]): apps have
// it. A CA that forbids a sub-CA (path length 0: made by an older
// tlsbridge, or imported), one that is not self-signed, and an ECDSA CA
// (as fast on its own) sign ECDSA leaves themselves; ECDSAIssuer says
// which applies.
//
// The cost of sharing is that a leaked leaf key can impersonate every host
// the process has minted a leaf for. But the leaf keys sit in the same
// process as the CA key, and anyone who can read one can read the other —
// and the CA key is worse to lose, since it can sign for any host at all.
// Per-host keys would not shrink that exposure, only slow the proxy down.
// The key lifetime is the process lifetime, and leaves are short-lived
// (DefaultLeafValidity), so a restart rotates everything but the CA.
//
// # X.509 choices
//
// The CA is RSA-2048 by default, because Windows XP and Java 6 cannot verify
// an ECDSA chain; ECDSA P-256 is available for newer fleets. It is valid for
// ten years, may sign one level of sub-CA below it if RSA (path length 1:
// the in-memory intermediate above; an ECDSA CA has path length 0), and can
// be limited to given names with X.509 name constraints
// (Options.PermittedHosts).
// Leaves carry their names as SANs and the first name as the common name,
// serverAuth only, KeyEncipherment for RSA keys (RSA key exchange), 128-bit
// random serials, and a NotBefore an hour in the past for skewed clocks.
// Each choice is explained where it is made.
//
// Package catest provides throw-away CAs for tests.
package ca
