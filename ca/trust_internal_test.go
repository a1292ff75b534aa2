package ca

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tests here never touch the real trust stores: every store lives in
// t.TempDir(), found through a fake trustEnv.

func TestParseStores(t *testing.T) {
	tests := []struct {
		in      string
		want    []Store
		wantErr bool
	}{
		{"system", []Store{StoreSystem}, false},
		{"java,system", []Store{StoreSystem, StoreJava}, false},
		{" NSS , firefox,java,java", []Store{StoreNSS, StoreJava}, false},
		{"system,nss,java", Stores(), false},
		{"", nil, true},
		{",", nil, true},
		{"windows", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStores(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownStore) {
					t.Errorf("ParseStores(%q) error = %v, want ErrUnknownStore", tt.in, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ParseStores(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// skipTest is one store that Install must skip, with the reason it gives.
type skipTest struct {
	name   string
	store  Store
	env    func(*trustEnv)
	want   string // in the skip reason
	wantIs error  // wrapped by the skip reason, if not nil
}

func testAuthority(t *testing.T) *Authority {
	t.Helper()
	a, err := Create(t.TempDir(), Options{Key: KeyECDSAP256}, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// emptyEnv has no tools, no Java, no HOME and is not root; its system
// store must not be touched (emptySystemEnv in trust_<goos>_test.go).
func emptyEnv() *trustEnv {
	return &trustEnv{
		getenv:   func(string) string { return "" },
		lookPath: func(f string) (string, error) { return "", exec.ErrNotFound },
		command: func(name string, args ...string) ([]byte, error) {
			return nil, errors.New("no commands in this test")
		},
		sys: emptySystemEnv(),
	}
}

func TestInstallSkipsWithReason(t *testing.T) {
	a := testAuthority(t)
	tests := append(systemSkipTests(t), []skipTest{
		{"nss/no-certutil", StoreNSS, nil, certutilHelp, nil},
		{"nss/no-database", StoreNSS, func(e *trustEnv) {
			e.lookPath = func(string) (string, error) { return "/usr/bin/certutil", nil }
			home := t.TempDir()
			e.getenv = func(k string) string { return map[string]string{"HOME": home}[k] }
		}, "certutil -d sql:", nil},
		{"java/nothing", StoreJava, nil, "JAVA_HOME is not set and there is no java on PATH", nil},
		{"java/home-without-keytool", StoreJava, func(e *trustEnv) {
			home := t.TempDir()
			e.getenv = func(k string) string { return map[string]string{"JAVA_HOME": home}[k] }
		}, "no keytool in", nil},
	}...)
	if nssUnsupported != nil { // Windows
		tests = slices.DeleteFunc(tests, func(tt skipTest) bool { return tt.store == StoreNSS })
		tests = append(tests, skipTest{"nss/unsupported", StoreNSS, nil, "certutil does not exist", nil})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := emptyEnv()
			if tt.env != nil {
				tt.env(env)
			}
			res, err := a.installWith(env, TrustOptions{Stores: []Store{tt.store}})
			if len(res) != 1 || res[0].Outcome != Skipped {
				t.Fatalf("install %v = %v, want one Skipped result", tt.store, res)
			}
			if !errors.Is(res[0].Err, ErrStoreUnavailable) || !strings.Contains(res[0].Err.Error(), tt.want) {
				t.Errorf("skip reason = %v, want ErrStoreUnavailable mentioning %q", res[0].Err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(res[0].Err, tt.wantIs) {
				t.Errorf("skip reason = %v, want it to wrap %v", res[0].Err, tt.wantIs)
			}
			// The command line adds how to run tlsbridge again; the
			// library names no tlsbridge command (issue 12).
			if strings.Contains(res[0].Err.Error(), "tlsbridge ") {
				t.Errorf("skip reason = %v, names a tlsbridge command", res[0].Err)
			}
			// Named explicitly, so a skip is a failure of the command.
			if !errors.Is(err, ErrStoreUnavailable) {
				t.Errorf("install error = %v, want ErrStoreUnavailable", err)
			}
		})
	}

	t.Run("all-stores/none-available", func(t *testing.T) {
		res, err := a.installWith(emptyEnv(), TrustOptions{})
		if len(res) != 3 || anyOutcome(res, Installed, AlreadyInstalled, Failed) {
			t.Errorf("install = %v, want three skips", res)
		}
		if err == nil || !strings.Contains(err.Error(), "trusted in no store") || !errors.Is(err, ErrTrustedNowhere) {
			t.Errorf("install error = %v, want \"trusted in no store\" (ErrTrustedNowhere)", err)
		}
	})
	t.Run("all-stores/uninstall-skips-are-fine", func(t *testing.T) {
		if _, err := a.uninstallWith(emptyEnv(), TrustOptions{}); err != nil {
			t.Errorf("uninstall with nothing available: error = %v, want nil", err)
		}
	})
}

// realToolEnv is emptyEnv with the real PATH and commands, but HOME and
// JAVA_HOME pointing into the test's temp dirs, and the system store faked.
func realToolEnv(t *testing.T, vars map[string]string) *trustEnv {
	env := emptyEnv()
	env.lookPath = exec.LookPath
	env.getenv = func(k string) string { return vars[k] }
	env.command = func(name string, args ...string) ([]byte, error) {
		return exec.Command(name, args...).CombinedOutput()
	}
	env.admin = isAdmin()
	return env
}

func TestNSSStoreLifecycle(t *testing.T) {
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Skip("certutil not found (apt-get install libnss3-tools)")
	}
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(certutil, "-d", "sql:"+db, "-N", "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v: %s", err, out)
	}
	a := testAuthority(t)
	other := testAuthority(t)
	env := realToolEnv(t, map[string]string{"HOME": home})
	storeLifecycle(t, env, a, other, StoreNSS, "sql:"+db)
}

func TestJavaStoreLifecycle(t *testing.T) {
	keytool, err := exec.LookPath("keytool")
	if err != nil {
		t.Skip("keytool not found (apt-get install default-jre-headless)")
	}
	if keytool, err = filepath.EvalSymlinks(keytool); err != nil {
		t.Fatal(err)
	}
	// A JAVA_HOME of our own: the real keytool, a keystore with one
	// unrelated CA in it.
	home := t.TempDir()
	cacerts := filepath.Join(home, "lib", "security", "cacerts")
	for _, d := range []string{filepath.Join(home, "bin"), filepath.Dir(cacerts)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(keytool, filepath.Join(home, "bin", "keytool")); err != nil {
		t.Fatal(err)
	}
	seed := testAuthority(t)
	if out, err := exec.Command(keytool, "-importcert", "-noprompt", "-keystore", cacerts, "-storepass", "changeit",
		"-file", seed.CertPath(), "-alias", "seed").CombinedOutput(); err != nil {
		t.Fatalf("keytool -importcert: %v: %s", err, out)
	}
	a := testAuthority(t)
	env := realToolEnv(t, map[string]string{"JAVA_HOME": home})
	storeLifecycle(t, env, a, seed, StoreJava, cacerts)
}

// storeLifecycle installs, re-installs and removes a in store s and checks
// the status at each step, and that other (already in the store, or not)
// is left as it was.
func storeLifecycle(t *testing.T, env *trustEnv, a, other *Authority, s Store, where string) {
	t.Helper()
	opts := TrustOptions{Stores: []Store{s}}
	otherBefore := other.statusWith(env, opts)[0].Outcome
	steps := []struct {
		name string
		do   func() ([]StoreResult, error)
		want Outcome
	}{
		{"status-before", func() ([]StoreResult, error) { return a.statusWith(env, opts), nil }, NotInstalled},
		{"install", func() ([]StoreResult, error) { return a.installWith(env, opts) }, Installed},
		{"install-again", func() ([]StoreResult, error) { return a.installWith(env, opts) }, AlreadyInstalled},
		{"status-installed", func() ([]StoreResult, error) { return a.statusWith(env, opts), nil }, Trusted},
		{"uninstall", func() ([]StoreResult, error) { return a.uninstallWith(env, opts) }, Removed},
		{"uninstall-again", func() ([]StoreResult, error) { return a.uninstallWith(env, opts) }, NotInstalled},
		{"status-after", func() ([]StoreResult, error) { return a.statusWith(env, opts), nil }, NotInstalled},
	}
	for _, st := range steps {
		res, err := st.do()
		if err != nil || len(res) != 1 || res[0].Outcome != st.want {
			t.Fatalf("%v %s: %v, %v, want %v", s, st.name, res, err, st.want)
		}
		if res[0].Where != where {
			t.Errorf("%v %s: where = %q, want %q", s, st.name, res[0].Where, where)
		}
	}
	if got := other.statusWith(env, opts)[0].Outcome; got != otherBefore {
		t.Errorf("%v: another CA's status went from %v to %v", s, otherBefore, got)
	}
}
