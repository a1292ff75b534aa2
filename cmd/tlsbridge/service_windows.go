package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// The Windows service: serviceManager over the service control manager
// (mgr), and "tlsbridge service run", the process it starts (svc.Run),
// which hosts serve through hostService (service.go).

func newServiceManager() (serviceManager, error) { return scm{}, nil }

// scm is serviceManager over golang.org/x/sys/windows/svc/mgr. Each call
// connects and disconnects: the commands are one call each.
type scm struct{}

func (scm) open(name string) (*mgr.Mgr, *mgr.Service, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the service control manager: %w", err)
	}
	s, err := m.OpenService(name)
	if err != nil {
		m.Disconnect()
		if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
			return nil, nil, errServiceNotInstalled
		}
		return nil, nil, fmt.Errorf("open service %q: %w", name, err)
	}
	return m, s, nil
}

func (scm) install(spec serviceSpec) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(spec.name); err == nil {
		s.Close()
		return errServiceExists
	}
	s, err := m.CreateService(spec.name, spec.exe, mgr.Config{
		DisplayName: spec.display,
		Description: spec.description,
		StartType:   mgr.StartAutomatic,
	}, spec.args...)
	if err != nil {
		return fmt.Errorf("create service %q: %w", spec.name, err)
	}
	defer s.Close()
	// Restart after a crash (5 s, then 30 s); the count resets after a
	// day. Best effort: the service works without it.
	_ = s.SetRecoveryActions([]mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
	}, 24*60*60)
	// A source left by an earlier install would make this fail.
	_ = eventlog.Remove(spec.name)
	if err := eventlog.InstallAsEventCreate(spec.name, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
		_ = s.Delete()
		return fmt.Errorf("register Event Log source %q: %w", spec.name, err)
	}
	return nil
}

func (c scm) uninstall(name string) error {
	m, s, err := c.open(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service %q: %w", name, err)
	}
	_ = eventlog.Remove(name) // best effort: the service is gone
	return nil
}

func (c scm) start(name string) error {
	m, s, err := c.open(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if err := s.Start(); err != nil {
		if errors.Is(err, windows.ERROR_SERVICE_ALREADY_RUNNING) {
			return errServiceRunning
		}
		return fmt.Errorf("start service %q: %w", name, err)
	}
	return nil
}

func (c scm) reload(name string) error {
	m, s, err := c.open(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if _, err := s.Control(svc.ParamChange); err != nil {
		return fmt.Errorf("reload service %q: %w", name, err)
	}
	return nil
}

func (c scm) stop(name string, timeout time.Duration) error {
	m, s, err := c.open(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	st, err := s.Control(svc.Stop)
	if errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return nil // stopped already
	}
	if err != nil {
		return fmt.Errorf("stop service %q: %w", name, err)
	}
	for deadline := time.Now().Add(timeout); st.State != svc.Stopped; {
		if time.Now().After(deadline) {
			return fmt.Errorf("service %q still %s after %v", name, stateName(st.State), timeout)
		}
		time.Sleep(300 * time.Millisecond)
		if st, err = s.Query(); err != nil {
			return fmt.Errorf("query service %q: %w", name, err)
		}
	}
	return nil
}

func (c scm) status(name string) (serviceStatus, error) {
	m, s, err := c.open(name)
	if err != nil {
		return serviceStatus{}, err
	}
	defer m.Disconnect()
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return serviceStatus{}, fmt.Errorf("query service %q: %w", name, err)
	}
	return serviceStatus{state: stateName(st.State), pid: st.ProcessId}, nil
}

func stateName(s svc.State) string {
	switch s {
	case svc.Stopped:
		return "stopped"
	case svc.StartPending:
		return "start pending"
	case svc.StopPending:
		return "stop pending"
	case svc.Running:
		return "running"
	case svc.ContinuePending:
		return "continue pending"
	case svc.PausePending:
		return "pause pending"
	case svc.Paused:
		return "paused"
	}
	return fmt.Sprintf("state %d", s)
}

// runServiceHost is "tlsbridge service run ARGS": what the service control
// manager starts. ARGS are run's (-config, -ca-dir).
func runServiceHost(_ context.Context, args []string, _ io.Writer) error {
	h := &winService{args: args}
	if l, err := eventlog.Open(serviceName); err == nil {
		h.elog = l
		defer l.Close()
	}
	// svc.Run itself tells whether the service control manager started
	// this process; svc.IsWindowsService's parent and session checks say
	// no under Wine, whose services.exe does start it.
	err := svc.Run(serviceName, h)
	if errors.Is(err, windows.ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
		return errors.New("service run: only the service control manager starts this; use tlsbridge run, or tlsbridge service start")
	}
	if err != nil {
		return fmt.Errorf("service run: %w", err)
	}
	return nil
}

// winService is the svc.Handler: it runs serve with its log in
// tlsbridge.log beside the config, and reports start, stop and failure to
// the Event Log.
type winService struct {
	args []string
	elog *eventlog.Log // nil if the source cannot be opened
}

// Event ids in the Event Log.
const (
	eventStarted = 1
	eventStopped = 2
	eventFailed  = 3
)

func (w *winService) event(id uint32, msg string) {
	if w.elog == nil {
		return
	}
	if id == eventFailed {
		_ = w.elog.Error(id, msg)
		return
	}
	_ = w.elog.Info(id, msg)
}

func (w *winService) Execute(_ []string, r <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown | svc.AcceptParamChange
	changes <- svc.Status{State: svc.StartPending}
	logPath := serviceLogPath(w.args)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		w.event(eventFailed, fmt.Sprintf("tlsbridge cannot open its log %s: %v", logPath, err))
		return true, 1
	}
	defer logFile.Close()

	// Control requests become hostService's; Interrogate is answered here.
	requests := make(chan serviceRequest)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			var req serviceRequest
			select {
			case <-done:
				return
			case c := <-r:
				switch c.Cmd {
				case svc.Interrogate:
					select {
					case changes <- c.CurrentStatus:
					case <-done: // Execute returned; nobody reads changes
						return
					}
					continue
				case svc.Stop, svc.Shutdown:
					req = requestStop
				case svc.ParamChange:
					req = requestReload
				default:
					continue
				}
			}
			select {
			case requests <- req:
			case <-done:
				return
			}
		}
	})
	defer wg.Wait()
	defer close(done)

	err = hostService(func(ctx context.Context, reloads <-chan os.Signal) error {
		return serve(ctx, w.args, logFile, reloads)
	}, requests, func() {
		changes <- svc.Status{State: svc.Running, Accepts: accepts}
		w.event(eventStarted, "tlsbridge started; log: "+logPath)
	}, func() {
		// The drain: limits.drain_timeout, 10 s by default.
		changes <- svc.Status{State: svc.StopPending, WaitHint: uint32(stopTimeout / time.Millisecond)}
	})
	if err != nil {
		fmt.Fprintf(logFile, "tlsbridge: %v\n", err) // as "tlsbridge run" prints it
		w.event(eventFailed, "tlsbridge stopped: "+err.Error())
		return true, 1
	}
	w.event(eventStopped, "tlsbridge stopped")
	return false, 0
}

// serviceLogPath is tlsbridge.log beside the service's -config.
func serviceLogPath(args []string) string {
	fs := flag.NewFlagSet("service run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := fs.String("config", "", "")
	fs.String("ca-dir", "", "")
	_ = fs.Parse(args) // install wrote them; serve reports a bad one
	dir := filepath.Dir(*cfg)
	if *cfg == "" {
		dir = os.Getenv("ProgramData")
	}
	return filepath.Join(dir, "tlsbridge.log")
}
