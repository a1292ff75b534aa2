//go:build !windows

package main

import (
	"context"
	"errors"
	"io"
)

// errNoServiceManager: "tlsbridge service" drives the Windows service
// control manager; elsewhere the OS's own service manager runs "tlsbridge
// run".
var errNoServiceManager = errors.New("tlsbridge service is for Windows; on Linux use the systemd unit (make install, or the .deb: see docs/install.md)")

func newServiceManager() (serviceManager, error) { return nil, errNoServiceManager }

func runServiceHost(context.Context, []string, io.Writer) error { return errNoServiceManager }
