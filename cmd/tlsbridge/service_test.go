package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// fakeSCM is a service control manager with at most one service.
type fakeSCM struct {
	installed *serviceSpec
	running   bool
	calls     []string
}

func (f *fakeSCM) install(s serviceSpec) error {
	f.calls = append(f.calls, "install")
	if f.installed != nil {
		return errServiceExists
	}
	f.installed = &s
	return nil
}

func (f *fakeSCM) uninstall(name string) error {
	f.calls = append(f.calls, "uninstall "+name)
	if f.installed == nil {
		return errServiceNotInstalled
	}
	f.installed = nil
	return nil
}

func (f *fakeSCM) start(name string) error {
	f.calls = append(f.calls, "start "+name)
	if f.installed == nil {
		return errServiceNotInstalled
	}
	if f.running {
		return errServiceRunning
	}
	f.running = true
	return nil
}

func (f *fakeSCM) reload(name string) error {
	f.calls = append(f.calls, "reload "+name)
	if !f.running {
		return errors.New("service not running")
	}
	return nil
}

func (f *fakeSCM) stop(name string, timeout time.Duration) error {
	f.calls = append(f.calls, "stop "+name)
	if f.installed == nil {
		return errServiceNotInstalled
	}
	if timeout < 10*time.Second {
		return errors.New("stop timeout shorter than the default drain")
	}
	f.running = false
	return nil
}

func (f *fakeSCM) status(string) (serviceStatus, error) {
	if f.installed == nil {
		return serviceStatus{}, errServiceNotInstalled
	}
	if f.running {
		return serviceStatus{state: "running", pid: 4242}, nil
	}
	return serviceStatus{state: "stopped"}, nil
}

func TestServiceCommands(t *testing.T) {
	cfg := writeConfig(t, "listen = \"127.0.0.1:3128\"\n")
	caDir := t.TempDir()
	f := &fakeSCM{}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := serviceCommand(f, args[0], args[1:], &out, &errOut)
		return out.String(), err
	}

	if _, err := run("status"); !errors.Is(err, errServiceNotInstalled) || !strings.Contains(err.Error(), "tlsbridge service install") {
		t.Errorf("status before install = %v, want not installed, naming service install", err)
	}
	out, err := run("install", "-config", cfg, "-ca-dir", caDir)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	exe, _ := os.Executable()
	want := serviceSpec{name: "tlsbridge", exe: exe, args: []string{"service", "run", "-config", cfg, "-ca-dir", caDir}}
	if got := f.installed; got == nil || got.name != want.name || got.exe != want.exe || !slices.Equal(got.args, want.args) {
		t.Fatalf("installed %+v, want %+v", got, want)
	}
	if !strings.Contains(out, "tlsbridge service start") {
		t.Errorf("install output %q does not say how to start it", out)
	}
	if _, err := run("install", "-config", cfg); !errors.Is(err, errServiceExists) || !strings.Contains(err.Error(), "tlsbridge service uninstall") {
		t.Errorf("second install = %v, want exists, naming uninstall", err)
	}
	if _, err := run("start"); err != nil {
		t.Fatal(err)
	}
	if out, err := run("start"); err != nil || !strings.Contains(out, "running already") {
		t.Errorf("second start = %q, %v, want success saying it runs already", out, err)
	}
	if out, err := run("status"); err != nil || out != "service \"tlsbridge\": running (pid 4242)\n" {
		t.Errorf("status = %q, %v", out, err)
	}
	if _, err := run("reload"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if _, err := run("stop"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if out, err := run("status"); err != nil || out != "service \"tlsbridge\": stopped\n" {
		t.Errorf("status = %q, %v", out, err)
	}
	if out, err := run("uninstall"); err != nil || !strings.Contains(out, "kept") {
		t.Errorf("uninstall = %q, %v", out, err)
	}
	if _, err := run("start"); !errors.Is(err, errServiceNotInstalled) {
		t.Errorf("start after uninstall = %v, want not installed", err)
	}
}

// Without -ca-dir and ca.dir, install pins the default directory as the
// installing administrator sees it: the service account's environment may
// differ (under Wine, LocalSystem's %ProgramData% is another directory).
func TestServiceInstallPinsCADir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	want, err := ca.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSCM{}
	cfg := writeConfig(t, "listen = \"127.0.0.1:3128\"\n")
	if err := serviceCommand(f, "install", []string{"-config", cfg}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := f.installed.args; !slices.Equal(got, []string{"service", "run", "-config", cfg, "-ca-dir", want}) {
		t.Errorf("service args %q, want -ca-dir %s", got, want)
	}
	f = &fakeSCM{}
	cfg = writeConfig(t, "[ca]\ndir = \"ca\"\n")
	if err := serviceCommand(f, "install", []string{"-config", cfg}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := f.installed.args; slices.Contains(got, "-ca-dir") {
		t.Errorf("service args %q: want no -ca-dir when the config sets ca.dir", got)
	}
}

// install checks the config now, not at the service's first start.
func TestServiceInstallChecksConfig(t *testing.T) {
	for _, tt := range []struct {
		name, config, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "config.toml"), "no config at"},
		{"invalid", writeConfig(t, "listen = \"127.0.0.1:3128\"\nbogus = 1\n"), "bogus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSCM{}
			err := serviceCommand(f, "install", []string{"-config", tt.config}, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || f.installed != nil {
				t.Errorf("install -config %s = %v (installed %v), want an error with %q and nothing installed", tt.name, err, f.installed, tt.want)
			}
		})
	}
}

// hostService: a stop request drains serve through its context, a reload
// request reaches serve as a SIGHUP would, and a serve that fails on its
// own ends the service with its error.
func TestHostService(t *testing.T) {
	t.Run("reload-then-stop", func(t *testing.T) {
		requests := make(chan serviceRequest)
		reloaded := make(chan struct{})
		var events []string
		errc := make(chan error, 1)
		go func() {
			errc <- hostService(func(ctx context.Context, reloads <-chan os.Signal) error {
				for {
					select {
					case <-reloads:
						reloaded <- struct{}{}
					case <-ctx.Done():
						events = append(events, "drained")
						return nil
					}
				}
			}, requests, func() { events = append(events, "started") }, func() { events = append(events, "stopping") })
		}()
		requests <- requestReload
		<-reloaded
		requests <- requestReload
		<-reloaded
		requests <- requestStop
		if err := <-errc; err != nil {
			t.Fatalf("hostService = %v", err)
		}
		if want := []string{"started", "stopping", "drained"}; !slices.Equal(events, want) {
			t.Errorf("events %v, want %v", events, want)
		}
	})
	t.Run("serve-fails", func(t *testing.T) {
		boom := errors.New("listen: address in use")
		err := hostService(func(context.Context, <-chan os.Signal) error { return boom },
			make(chan serviceRequest), func() {}, func() { t.Error("stopping called without a stop request") })
		if !errors.Is(err, boom) {
			t.Errorf("hostService = %v, want %v", err, boom)
		}
	})
}

// The service hosts the real proxy: a ParamChange reloads the config
// without any signal (Windows has no SIGHUP), and a stop drains it.
func TestHostServiceRunsServe(t *testing.T) {
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\n")
	args := []string{"-config", cfg, "-ca-dir", t.TempDir()}
	log := &syncBuffer{}
	requests := make(chan serviceRequest)
	errc := make(chan error, 1)
	go func() {
		errc <- hostService(func(ctx context.Context, reloads <-chan os.Signal) error {
			return serve(ctx, args, log, reloads)
		}, requests, func() {}, func() {})
	}()
	waitFor(t, "the proxy to listen", func() bool { return strings.Contains(log.String(), "tlsbridge listening") })
	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\n[[rule]]\nhosts = [\"x.test\"]\naction = \"deny\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	requests <- requestReload
	waitFor(t, "the reload", func() bool {
		return strings.Contains(log.String(), "config reloaded") && strings.Contains(log.String(), "1 rule")
	})
	requests <- requestStop
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serve under hostService = %v\n%s", err, log)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop")
	}
	if !strings.Contains(log.String(), "tlsbridge stopped") {
		t.Errorf("log lacks the stop line:\n%s", log)
	}
}
