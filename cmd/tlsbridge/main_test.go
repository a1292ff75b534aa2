package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs `tlsbridge run args...` in the background and returns its
// standard error as it grows, and stop, which ends the run and fails the
// test if run returned an error or did not return within 15 s. stop also
// runs at cleanup; calling it again does nothing.
func startRun(t *testing.T, args ...string) (stderr *syncBuffer, stop func()) {
	t.Helper()
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"run"}, args...), &syncBuffer{}, stderr) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("run did not return 15 s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stderr, stop
}

// listenRE finds the proxy's address in run's "listening" line.
var listenRE = regexp.MustCompile(`msg="tlsbridge listening".* listen="([^"]+)"`)

// proxyAddr waits for run's "listening" line in stderr and returns the
// proxy's address from it.
func proxyAddr(t *testing.T, stderr *syncBuffer) string {
	t.Helper()
	var proxy string
	waitFor(t, "the proxy to listen", func() bool {
		m := listenRE.FindStringSubmatch(stderr.String())
		if m != nil {
			proxy = m[1]
		}
		return m != nil
	})
	return proxy
}

// runCmd runs a command line and returns its output and error.
func runCmd(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, tt := range []struct {
		name, config string
		want         []string
	}{
		{"unknown-key", "listen = \"127.0.0.1:0\"\nlisten_port = 3128\n", []string{"listen_port"}},
		{"bad-version", "[upstream]\nmin_tls = \"1.7\"\n", []string{"upstream.min_tls", "1.7"}},
		{"unquoted-version", "[upstream]\nmin_tls = 1.2\n", []string{`upstream.min_tls: 1.2 is a number; write it as a string: "1.2"`}},
		{"min-above-max", "[client]\nmin_tls = \"1.3\"\nmax_tls = \"1.1\"\n", []string{"client.min_tls"}},
		{"rule-bad-version", "[[rule]]\nhosts = [\"a.test\"]\naction = \"bump\"\n[rule.upstream]\nmin_tls = \"2\"\n", []string{"rule[0].upstream.min_tls"}},
		{"open-listen", "listen = \"0.0.0.0:3128\"\n", []string{"listen", "allow_clients"}},
		{"bad-action", "[[rule]]\nhosts = [\"a.test\"]\naction = \"mitm\"\n", []string{"rule[0].action", "mitm"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, context.Background(), "run", "-config", writeConfig(t, tt.config), "-ca-dir", t.TempDir())
			if err == nil {
				t.Fatalf("run with %q succeeded, want an error", tt.config)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestRunCreatesAndReusesCA(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
	serveBriefly := func(cfg string) (log string) {
		stderr, stop := startRun(t, "-config", cfg, "-ca-dir", caDir)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(caDir, "ca-key.pem")); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		stop()
		return stderr.String()
	}
	// The CA run creates is RSA with room for the intermediate; the log
	// says so once at debug level, not at info.
	const intermediate = "signed by an in-memory ECDSA P-256 intermediate"
	if log := serveBriefly(cfg); strings.Contains(log, intermediate) || !strings.Contains(log, "config "+cfg+": 0 rules, 0 listeners") {
		t.Errorf("run's info log mentions the intermediate, or does not name the config and its counts:\n%s", log)
	}
	first, _, err := runCmd(t, context.Background(), "ca", "info", "-ca-dir", caDir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(caDir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("ca-key.pem mode = %o, want 600", mode)
	}
	debug := writeConfig(t, "listen = \"127.0.0.1:0\"\n[log]\nlevel = \"debug\"\n")
	if log := serveBriefly(debug); strings.Count(log, intermediate) != 1 {
		t.Errorf("run's debug log does not say once that ECDSA leaves are signed by the intermediate:\n%s", log)
	}
	second, _, err := runCmd(t, context.Background(), "ca", "info", "-ca-dir", caDir)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || !strings.Contains(first, "sha256") {
		t.Errorf("restart changed the CA:\n%s\nthen\n%s", first, second)
	}
}

func TestCAInitExport(t *testing.T) {
	caDir := t.TempDir()
	out, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir)
	if err != nil {
		t.Fatalf("ca init: %v", err)
	}
	if !strings.Contains(out, "ca.pem") {
		t.Errorf("ca init output %q does not say where the CA is", out)
	}
	if _, _, err := runCmd(t, context.Background(), "ca", "init", "-ca-dir", caDir); err == nil || !strings.Contains(err.Error(), "-force") {
		t.Errorf("second ca init: err = %v, want a refusal that mentions -force", err)
	}

	derPath := filepath.Join(t.TempDir(), "ca.der")
	if _, _, err := runCmd(t, context.Background(), "ca", "export", "-ca-dir", caDir, "-der", "-out", derPath); err != nil {
		t.Fatalf("ca export -der: %v", err)
	}
	der, err := os.ReadFile(derPath)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("exported DER does not parse: %v", err)
	}
	if !cert.IsCA {
		t.Errorf("exported certificate is not a CA")
	}
	pemOut, _, err := runCmd(t, context.Background(), "ca", "export", "-ca-dir", caDir)
	if err != nil || !strings.HasPrefix(pemOut, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("ca export = %q, %v; want a PEM certificate", pemOut, err)
	}

	if _, _, err := runCmd(t, context.Background(), "ca", "export", "-ca-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "ca init") {
		t.Errorf("export without a CA: err = %v, want a hint to run ca init", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if _, _, err := runCmd(t, context.Background(), "serve"); err == nil {
		t.Error("unknown command accepted")
	}
	if out, _, err := runCmd(t, context.Background(), "version"); err != nil || !strings.HasPrefix(out, "tlsbridge ") {
		t.Errorf("version = %q, %v", out, err)
	}
}

// -h, -help and --help print usage and succeed for every command and
// subcommand, "ca" included.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"ca", "-h"}, {"ca", "--help"}, {"ca", "-help"}, {"ca", "help"},
		{"run", "-h"}, {"run", "--help"}, {"check", "-h"},
		{"ca", "init", "-h"}, {"ca", "import", "-h"}, {"ca", "export", "-h"},
		{"ca", "install", "-h"}, {"ca", "uninstall", "-h"}, {"ca", "info", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, err := runCmd(t, context.Background(), args...)
			out := stdout + stderr
			if err != nil || !strings.Contains(strings.ToLower(out), "usage") || strings.Contains(out, "unknown") {
				t.Errorf("tlsbridge %s = %v, output:\n%s\nwant usage and no error", strings.Join(args, " "), err, out)
			}
		})
	}
	if stdout, _, _ := runCmd(t, context.Background(), "ca", "-h"); !strings.Contains(stdout, "ca init") || !strings.Contains(stdout, "ca info") {
		t.Errorf("tlsbridge ca -h does not list the ca subcommands:\n%s", stdout)
	}
	if _, stderr, err := runCmd(t, context.Background(), "ca", "bogus"); err == nil || !strings.Contains(stderr, "ca init") {
		t.Errorf("tlsbridge ca bogus = %v, stderr:\n%s\nwant an error and the ca usage", err, stderr)
	}
}

// "version", "-version" and "--version" print one line with the version,
// commit and build date that the Makefile sets with -ldflags -X.
func TestVersion(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "v1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-12-05T12:00:00Z"
	for _, arg := range []string{"version", "-version", "--version"} {
		out, _, err := runCmd(t, context.Background(), arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"tlsbridge v1.2.3 ", "commit 0123456789abcdef0123456789abcdef01234567", "built 2026-12-05T12:00:00Z", runtime.Version()} {
			if !strings.Contains(out, want) {
				t.Errorf("%s = %q, want it to contain %q", arg, out, want)
			}
		}
		if strings.Count(out, "\n") != 1 {
			t.Errorf("%s = %q, want one line", arg, out)
		}
	}
}
