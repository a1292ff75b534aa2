package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/tlsbridge/tlsbridge/bump"
)

// errLegacyFails is check's non-zero exit: a legacy app would not get through.
var errLegacyFails = errors.New("check: a TLS 1.0 app would not reach this server through tlsbridge (see above)")

// runCheck is "tlsbridge check HOST[:PORT]": connect to the upstream the way
// the proxy would and explain what a legacy app would get.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("check", stderr)
	cf.register(fs)
	if err := parseFlags(fs, args, 1); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("check: want one HOST[:PORT], e.g. tlsbridge check api.example.com:443")
	}
	host, port, err := splitHostPort(fs.Arg(0))
	if err != nil {
		return err
	}
	pol, err := cf.loadPolicy()
	if err != nil {
		return err
	}
	r := bump.Check(ctx, pol, host, port, nil)
	if _, err := r.WriteTo(stdout); err != nil {
		return err
	}
	if !r.LegacyOK() {
		return errLegacyFails
	}
	return nil
}

// splitHostPort accepts "host", "host:port", "[v6]:port" and "v6".
func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return strings.Trim(s, "[]"), 443, nil // "host", "[v6]" or "v6"
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("check: %q: port %q is not 1-65535", s, p)
	}
	return host, port, nil
}
