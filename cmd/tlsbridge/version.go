package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/tlsbridge/tlsbridge/bump"
)

// Set at build time by the Makefile (LDFLAGS):
//
//	-X main.version=$(git describe) -X main.commit=$(git rev-parse HEAD) -X main.date=<UTC RFC 3339>
//
// A plain "go build" leaves them empty; versionLine then falls back to
// what the Go toolchain recorded (module version, vcs.revision), which
// "go install" and builds with -buildvcs fill in.
var (
	version = ""
	commit  = ""
	date    = ""
)

// versionLine is what "tlsbridge version" prints, on one line so scripts
// can read it: "tlsbridge v1.2.3 (commit 0123abc…, built 2026-12-05T12:00:00Z, go1.26.8 linux/amd64)".
func versionLine() string {
	v, c, d := version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	engine := ""
	if e := bump.LegacyEngine(); e != "" {
		engine = ", legacy engine " + e
	}
	return fmt.Sprintf("tlsbridge %s (commit %s, built %s, %s %s/%s%s)", v, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH, engine)
}
