package ca

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/smallstep/truststore"
)

// javaStore is a JDK's cacerts keystore. truststore's own Java trust needs
// $JAVA_HOME; this one also finds the JDK of the java on PATH, which is how
// Debian and most containers set Java up. It goes through truststore's
// Install and Uninstall, as a truststore.Trust, with truststore's
// JavaStorePass.
type javaStore struct {
	e       *trustEnv
	home    string
	keytool string
	cacerts string
}

func (e *trustEnv) openJava(write bool) (trustStore, error) {
	home := e.getenv("JAVA_HOME")
	if home == "" {
		java, err := e.lookPath("java")
		if err != nil {
			return nil, fmt.Errorf("JAVA_HOME is not set and there is no java on PATH: %w (set JAVA_HOME to the JDK your app runs on, e.g. JAVA_HOME=%s)", ErrStoreUnavailable, javaHomeExample)
		}
		if real, err := filepath.EvalSymlinks(java); err == nil {
			java = real
		}
		home = filepath.Dir(filepath.Dir(java)) // <home>/bin/java
	}
	st := &javaStore{e: e, home: home, keytool: filepath.Join(home, "bin", "keytool"+exeSuffix)}
	if _, err := os.Stat(st.keytool); err != nil {
		return nil, fmt.Errorf("no keytool in %s: %w (set JAVA_HOME to a JDK or JRE that has bin/keytool)", filepath.Join(home, "bin"), ErrStoreUnavailable)
	}
	for _, p := range []string{
		filepath.Join(home, "lib", "security", "cacerts"),        // Java 9+
		filepath.Join(home, "jre", "lib", "security", "cacerts"), // Java 8 JDK
	} {
		if _, err := os.Stat(p); err == nil {
			st.cacerts = p
			break
		}
	}
	if st.cacerts == "" {
		return nil, fmt.Errorf("no lib/security/cacerts in %s: %w (set JAVA_HOME to the JDK your app runs on)", home, ErrStoreUnavailable)
	}
	if write {
		// Opening for writing without O_TRUNC changes nothing.
		f, err := os.OpenFile(st.cacerts, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w: %w", st.cacerts, ErrNeedsAdmin, ErrStoreUnavailable)
		}
		f.Close()
	}
	return st, nil
}

func (st *javaStore) where() string { return st.cacerts }

// elsewhere: Debian's ca-certificates-java copies system anchors into
// cacerts under "debian:<file>" aliases.
func (st *javaStore) elsewhere() string {
	return "it is also there under another alias, e.g. copied from the system store by Debian's ca-certificates-java"
}

// trusted looks for the CA's SHA-256 fingerprint in the keystore listing,
// whatever its alias: Java trusts it either way.
func (st *javaStore) trusted(c *x509.Certificate) (bool, error) {
	out, err := st.e.command(st.keytool, "-list", "-keystore", st.cacerts, "-storepass", truststore.JavaStorePass)
	if err != nil {
		return false, fmt.Errorf("keytool -list -keystore %s: %w: %s", st.cacerts, err, firstLine(out))
	}
	return bytes.Contains(out, []byte(fingerprint(c))), nil
}

func (st *javaStore) add(c *x509.Certificate) error {
	return truststore.Install(c, truststore.WithNoSystem(), truststore.WithTrust(javaTrust{st}))
}

func (st *javaStore) remove(c *x509.Certificate) error {
	return truststore.Uninstall(c, truststore.WithNoSystem(), truststore.WithTrust(javaTrust{st}))
}

// javaTrust adapts javaStore to truststore.Trust.
type javaTrust struct{ st *javaStore }

func (t javaTrust) Name() string    { return "java" }
func (t javaTrust) PreCheck() error { return nil } // openJava checked
func (t javaTrust) Exists(c *x509.Certificate) bool {
	ok, _ := t.st.trusted(c)
	return ok
}

func (t javaTrust) Install(filename string, c *x509.Certificate) error {
	out, err := t.st.e.command(t.st.keytool, "-importcert", "-noprompt", "-keystore", t.st.cacerts,
		"-storepass", truststore.JavaStorePass, "-file", filename, "-alias", trustName(c))
	if err != nil {
		return fmt.Errorf("keytool -importcert: %w: %s", err, firstLine(out))
	}
	return nil
}

func (t javaTrust) Uninstall(_ string, c *x509.Certificate) error {
	out, err := t.st.e.command(t.st.keytool, "-delete", "-alias", trustName(c), "-keystore", t.st.cacerts,
		"-storepass", truststore.JavaStorePass)
	if err != nil && !bytes.Contains(out, []byte("does not exist")) {
		return fmt.Errorf("keytool -delete: %w: %s", err, firstLine(out))
	}
	return nil
}
