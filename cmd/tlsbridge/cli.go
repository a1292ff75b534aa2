package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

const usage = `usage: tlsbridge <command> [flags]

commands:
  run     [-config PATH] [-ca-dir DIR]        run the proxy
` + caCommands + `  check   [-config PATH] HOST[:PORT]         explain what a legacy app would get from a server
  census  [-config PATH]                      print the legacy-TLS census of the running tlsbridge ([admin] listen)
  version                                     print the version, commit and build date (also -version, --version)
  service install|uninstall|start|stop|reload|status  run tlsbridge as a Windows service

Run "tlsbridge <command> -h" for a command's flags.
`

// caCommands are the "tlsbridge ca" lines of usage, also printed by
// "tlsbridge ca -h".
const caCommands = `  ca init [-config PATH] [-ca-dir DIR] [-force] [-key rsa|ecdsa]
  ca import [-ca-dir DIR] [-force] [-chain CHAIN] CERT KEY  use an existing CA or a sub-CA of your root
  ca export [-ca-dir DIR] [-der] [-out PATH]  write the CA certificate (PEM, or DER)
  ca install [-ca-dir DIR] [-stores system,nss,java]    trust the CA in these stores
  ca uninstall [-ca-dir DIR] [-stores system,nss,java]  remove it again
  ca info [-ca-dir DIR]                       show the CA and where it is trusted
`

const caUsage = `usage: tlsbridge ca <subcommand> [flags]

subcommands:
` + caCommands + `
Run "tlsbridge ca <subcommand> -h" for a subcommand's flags.
`

// errUsage is returned for a command line that cannot be run; the usage text
// has already been printed.
var errUsage = errors.New("bad command line (see usage above)")

// run dispatches a command line; it is main without the process exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "run":
		return runServe(ctx, args[1:], stdout, stderr)
	case "ca":
		return runCA(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "census":
		return runCensus(ctx, args[1:], stdout, stderr)
	case "service":
		return runService(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: %w", args[0], errUsage)
}

// commonFlags are the flags every command that touches config or CA takes.
type commonFlags struct {
	config string
	caDir  string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (default: ./config.toml if present, else built-in defaults)")
	fs.StringVar(&c.caDir, "ca-dir", "", "CA directory (default: $TLSBRIDGE_CA_DIR, then ca.dir from the config, then "+ca.DefaultDirHelp+")")
}

// loadPolicy reads the config named by -config, ./config.toml when it exists,
// or the built-in defaults.
func (c *commonFlags) loadPolicy() (*policy.Policy, error) {
	path := c.config
	if path == "" {
		if _, err := os.Stat("config.toml"); err != nil {
			return policy.Default(), nil
		}
		path = "config.toml"
	}
	p, err := policy.Load(path)
	if err != nil {
		return nil, fmt.Errorf("config %s is invalid; fix it, then run tlsbridge again:\n%w", path, err)
	}
	return p, nil
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and rejects leftover arguments.
func parseFlags(fs *flag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > positional {
		return fmt.Errorf("%s: unexpected argument %q (flags go before arguments; see -h)", fs.Name(), fs.Arg(positional))
	}
	return nil
}
