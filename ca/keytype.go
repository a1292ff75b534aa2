package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyType is the algorithm of a generated private key.
type KeyType uint8

// Key types. The zero value is not a key type; where a KeyType field may be
// left zero, its documentation says what zero means.
const (
	// KeyECDSAP256 is ECDSA on NIST P-256: fast to generate and to sign
	// with, supported by every client that implements TLS ECDHE-ECDSA suites
	// (RFC 4492), which excludes Windows XP and Java 6.
	KeyECDSAP256 KeyType = iota + 1
	// KeyRSA2048 is RSA with a 2048-bit modulus: understood by every TLS
	// client ever shipped, and required for RSA key exchange
	// (TLS_RSA_WITH_* suites).
	KeyRSA2048
)

// KeyTypes returns every defined key type, in declaration order, in a new
// slice (a function, not a variable, so no caller can change the set).
func KeyTypes() []KeyType {
	return []KeyType{KeyECDSAP256, KeyRSA2048}
}

// String returns the name used in configuration files: "ecdsa-p256" or
// "rsa2048".
func (k KeyType) String() string {
	switch k {
	case KeyECDSAP256:
		return "ecdsa-p256"
	case KeyRSA2048:
		return "rsa2048"
	}
	return fmt.Sprintf("KeyType(%d)", uint8(k))
}

// ParseKeyType parses "ecdsa-p256" or "rsa2048", or the short forms
// "ecdsa" and "rsa" that `ca init -key` takes (case-insensitively).
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(s) {
	case "ecdsa-p256", "ecdsa":
		return KeyECDSAP256, nil
	case "rsa2048", "rsa":
		return KeyRSA2048, nil
	}
	return 0, fmt.Errorf("key type %q: %w (want ecdsa-p256 or rsa2048, or ecdsa or rsa)", s, ErrUnknownKeyType)
}

// MarshalText implements encoding.TextMarshaler.
func (k KeyType) MarshalText() ([]byte, error) {
	if !k.valid() {
		return nil, fmt.Errorf("marshal %v: %w", k, ErrUnknownKeyType)
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseKeyType.
func (k *KeyType) UnmarshalText(text []byte) error {
	v, err := ParseKeyType(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

func (k KeyType) valid() bool {
	return k == KeyECDSAP256 || k == KeyRSA2048
}

// generateKey makes a new private key of type k.
func generateKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA2048:
		// 2048 bits: the smallest size current clients accept (NIST SP
		// 800-131A) and the largest some legacy ones handle well.
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("generate key: %v: %w", k, ErrUnknownKeyType)
}

// keyTypeOf reports the KeyType of a public key, if it is one of ours.
func keyTypeOf(pub crypto.PublicKey) (KeyType, bool) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return KeyECDSAP256, true
		}
	case *rsa.PublicKey:
		if p.N.BitLen() == 2048 {
			return KeyRSA2048, true
		}
	}
	return 0, false
}
