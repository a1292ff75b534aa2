package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// "tlsbridge service" installs and controls tlsbridge as a Windows service.
// The OS calls are behind serviceManager (the service control manager,
// service_windows.go) and the control loop behind serviceControl, so the
// logic here is tested on every OS with fakes (service_test.go).

// serviceName is the service's name in the service control manager and the
// Event Log source.
const serviceName = "tlsbridge"

// stopTimeout bounds "service stop": the drain (limits.drain_timeout,
// default 10 s and at most what an operator waits for) plus a margin.
const stopTimeout = 60 * time.Second

// serviceSpec is what "service install" registers.
type serviceSpec struct {
	name, display, description string
	exe                        string   // absolute path of this tlsbridge
	args                       []string // "service run -config ..."
}

// serviceStatus is what the service control manager says about the
// service: "running", "stopped", "start pending"... and its process id.
type serviceStatus struct {
	state string
	pid   uint32
}

// errServiceNotInstalled: there is no service by that name.
var errServiceNotInstalled = errors.New("the service is not installed")

// errServiceExists: install found a service by that name.
var errServiceExists = errors.New("the service is already installed")

// errServiceRunning: start found the service running already.
var errServiceRunning = errors.New("the service is already running")

// serviceManager is the part of the Windows service control manager that
// tlsbridge service uses.
type serviceManager interface {
	install(s serviceSpec) error // the service, set to start automatically, and its Event Log source
	uninstall(name string) error // both again; the service must be stopped
	start(name string) error
	// reload sends ParamChange: the service re-reads its config.
	reload(name string) error
	// stop asks the service to stop and waits until it has, or until
	// timeout.
	stop(name string, timeout time.Duration) error
	status(name string) (serviceStatus, error)
}

const serviceUsage = `usage: tlsbridge service <subcommand> [flags]    (Windows)

subcommands:
  install [-config PATH] [-ca-dir DIR]  register tlsbridge run as a service that starts with Windows
  uninstall                             remove it (stop it first)
  start | stop | status                 control it; stop drains like SIGTERM
  reload                                re-read the config, as SIGHUP does elsewhere

The service runs "tlsbridge run" with -config (default: ` + `%ProgramData%\tlsbridge\config.toml` + `),
as LocalSystem, logs to tlsbridge.log beside the config and start, stop and
failure to the Event Log (source tlsbridge).
`

// runService dispatches "tlsbridge service <subcommand>".
func runService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, serviceUsage)
		return fmt.Errorf("service: missing subcommand (install, uninstall, start, stop, reload, status): %w", errUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, serviceUsage)
		return nil
	case "run":
		// What the service control manager starts (service_<goos>.go).
		return runServiceHost(ctx, rest, stderr)
	case "install", "uninstall", "start", "stop", "reload", "status":
	default:
		fmt.Fprint(stderr, serviceUsage)
		return fmt.Errorf("service: unknown subcommand %q: %w", sub, errUsage)
	}
	m, err := newServiceManager() // service_<goos>.go
	if err != nil {
		return fmt.Errorf("service %s: %w", sub, err)
	}
	return serviceCommand(m, sub, rest, stdout, stderr)
}

// serviceCommand runs one subcommand against m.
func serviceCommand(m serviceManager, sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("service "+sub, stderr)
	var cfg, caDir string
	if sub == "install" {
		fs.StringVar(&cfg, "config", "", "config file the service runs with (default: "+ca.DefaultDirHelp+`\config.toml)`)
		fs.StringVar(&caDir, "ca-dir", "", "CA directory (default: ca.dir from the config, then "+ca.DefaultDirHelp+")")
	}
	if err := parseFlags(fs, args, 0); err != nil {
		return ignoreHelp(err)
	}
	switch sub {
	case "install":
		spec, err := serviceSpecFor(cfg, caDir)
		if err != nil {
			return err
		}
		if err := m.install(spec); err != nil {
			if errors.Is(err, errServiceExists) {
				return fmt.Errorf("service install: %w; to change it, run tlsbridge service stop, tlsbridge service uninstall, then install again", err)
			}
			return fmt.Errorf("service install: %w (run it in an elevated prompt)", err)
		}
		fmt.Fprintf(stdout, "installed service %q: %s %s\nit starts with Windows; start it now with: tlsbridge service start\n", spec.name, spec.exe, joinArgs(spec.args))
		return nil
	case "uninstall":
		if err := m.uninstall(serviceName); err != nil {
			return fmt.Errorf("service uninstall: %w%s", err, notInstalledHint(err))
		}
		fmt.Fprintf(stdout, "removed service %q (config, CA and logs are kept)\n", serviceName)
		return nil
	case "start":
		err := m.start(serviceName)
		if errors.Is(err, errServiceRunning) {
			fmt.Fprintf(stdout, "service %q is running already\n", serviceName)
			return nil
		}
		if err != nil {
			return fmt.Errorf("service start: %w%s", err, notInstalledHint(err))
		}
		fmt.Fprintf(stdout, "started service %q; tlsbridge service status shows it, tlsbridge.log beside the config has its log\n", serviceName)
		return nil
	case "reload":
		if err := m.reload(serviceName); err != nil {
			return fmt.Errorf("service reload: %w%s", err, notInstalledHint(err))
		}
		fmt.Fprintf(stdout, "asked service %q to reload its config; tlsbridge.log says what it applied\n", serviceName)
		return nil
	case "stop":
		if err := m.stop(serviceName, stopTimeout); err != nil {
			return fmt.Errorf("service stop: %w%s", err, notInstalledHint(err))
		}
		fmt.Fprintf(stdout, "stopped service %q\n", serviceName)
		return nil
	}
	st, err := m.status(serviceName)
	if err != nil {
		return fmt.Errorf("service status: %w%s", err, notInstalledHint(err))
	}
	fmt.Fprintf(stdout, "service %q: %s", serviceName, st.state)
	if st.pid != 0 {
		fmt.Fprintf(stdout, " (pid %d)", st.pid)
	}
	fmt.Fprintln(stdout)
	return nil
}

func notInstalledHint(err error) string {
	if errors.Is(err, errServiceNotInstalled) {
		return " (install it with: tlsbridge service install)"
	}
	return ""
}

// serviceSpecFor is the service "service install" registers: this
// executable, "service run" and the absolute config path (the service's
// working directory is System32), checked to load now rather than at the
// first start.
func serviceSpecFor(cfg, caDir string) (serviceSpec, error) {
	if cfg == "" {
		dir, err := ca.DefaultDir()
		if err != nil {
			return serviceSpec{}, fmt.Errorf("service install: %w", err)
		}
		cfg = filepath.Join(dir, "config.toml")
	}
	cfg, err := filepath.Abs(cfg)
	if err != nil {
		return serviceSpec{}, fmt.Errorf("service install: %w", err)
	}
	if _, err := os.Stat(cfg); err != nil {
		return serviceSpec{}, fmt.Errorf("service install: no config at %s (copy config.toml from the release archive there, or pass -config): %w", cfg, err)
	}
	cf := commonFlags{config: cfg}
	pol, err := cf.loadPolicy()
	if err != nil {
		return serviceSpec{}, fmt.Errorf("service install: %w", err)
	}
	if caDir == "" && pol.CA.Dir == "" {
		// Pin the default directory as this (administrator's) process
		// sees it, where "tlsbridge ca init" and "ca install" work: the
		// service account's environment may put it elsewhere (Wine gives
		// LocalSystem another %ProgramData%).
		if caDir, err = ca.DefaultDir(); err != nil {
			return serviceSpec{}, fmt.Errorf("service install: %w", err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return serviceSpec{}, fmt.Errorf("service install: find this executable: %w", err)
	}
	args := []string{"service", "run", "-config", cfg}
	if caDir != "" {
		if caDir, err = filepath.Abs(caDir); err != nil {
			return serviceSpec{}, fmt.Errorf("service install: %w", err)
		}
		args = append(args, "-ca-dir", caDir)
	}
	return serviceSpec{
		name:        serviceName,
		display:     "tlsbridge",
		description: "Lets legacy TLS 1.0/1.1 apps reach TLS 1.2+ servers (local HTTP CONNECT proxy)",
		exe:         exe,
		args:        args,
	}, nil
}

func joinArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += quoteArg(a)
	}
	return s
}

// serviceRequest is a control request from the service control manager.
type serviceRequest uint8

const (
	requestStop   serviceRequest = iota + 1 // Stop or Shutdown
	requestReload                           // ParamChange
)

// hostService runs serve until a stop request, as the Windows service
// does: a stop cancels serve's context (the same graceful drain as
// SIGTERM) and waits for it to return; a reload request is passed to serve
// as a SIGHUP would be. started is called once serve runs, stopping when
// the drain begins. It returns serve's error.
func hostService(serve func(ctx context.Context, reloads <-chan os.Signal) error, requests <-chan serviceRequest, started, stopping func()) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, reloads) }() // waited for below, on every path
	started()
	for {
		select {
		case err := <-done:
			return err // serve ended by itself: a failure (port taken, bad CA)
		case r := <-requests:
			switch r {
			case requestStop:
				stopping()
				cancel()
				return <-done
			case requestReload:
				select {
				case reloads <- syscall.SIGHUP:
				default: // a reload is pending already; it reads the newest file
				}
			}
		}
	}
}
