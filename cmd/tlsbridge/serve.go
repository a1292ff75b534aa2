package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// runServe is "tlsbridge run": load config and CA, listen, serve until ctx
// ends (SIGINT/SIGTERM); SIGHUP reloads the config.
func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("run", stderr)
	cf.register(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return ignoreHelp(err)
	}
	pol, err := cf.loadPolicy()
	if err != nil {
		return err
	}
	log, err := newLogger(pol.Log, stderr)
	if err != nil {
		return err
	}
	log.Info("config " + describeConfig(pol))
	mints := bump.NewLeafMints()
	authority, cache, err := openCA(cf.caDir, pol, mints, log)
	if err != nil {
		return err
	}
	defer cache.Close()

	ln, err := bump.Listen(ctx, pol.Listen)
	if err != nil {
		return fmt.Errorf("listen: cannot listen on %q: %w (is another proxy running? change listen in the config)", pol.Listen, err)
	}
	lns, err := openListeners(ctx, pol)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeListeners(lns)
	srv, err := bump.New(bump.Config{
		Policy:           pol,
		Certs:            cache,
		Log:              log,
		LeafMints:        mints,
		HandshakeTimeout: pol.Limits.HandshakeTimeout,
		DialTimeout:      pol.Limits.UpstreamTimeout,
		IdleTimeout:      pol.Limits.IdleTimeout,
		DrainTimeout:     pol.Limits.DrainTimeout,
		MaxConnections:   pol.Limits.MaxConnections,
		MaxHeaderBytes:   pol.Limits.MaxHeaderBytes,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()
	warnUnsafe(pol, log)
	stopAdmin, err := startAdmin(ctx, pol.Admin.Listen, authority, srv, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopAdmin()

	log.WithFields(logrus.Fields{logfield.Listen: ln.Addr().String(), logfield.CADir: authority.Dir}).Info("tlsbridge listening")
	log.Infof("apps use it with HTTPS_PROXY=http://%s and trust %s (tlsbridge ca install, or tlsbridge ca export -out ca.pem)", ln.Addr(), authority.CertPath())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	listeners := &listenerSet{ctx: ctx, wg: &wg, srv: srv, log: log}
	listeners.start(pol, lns)
	sd := newNotifier(log) // systemd Type=notify: READY=1 is sent by reloadOnHUP
	wg.Go(func() { reloadOnHUP(ctx, cf, srv, listeners, log, sd) })
	wg.Go(func() { <-ctx.Done(); sd.stopping() }) // the drain starts
	err = srv.Serve(ctx, ln)
	cancel()
	wg.Wait()
	log.Info("tlsbridge stopped")
	return err
}

// openCA resolves the CA directory, creates the CA on first run and starts
// the leaf cache, whose mints are timed into mints.
func openCA(flagDir string, pol *policy.Policy, mints *bump.LeafMints, log *logrus.Entry) (*ca.Authority, *ca.Cache, error) {
	dir, err := ca.Dir(flagDir, pol.CA.Dir)
	if err != nil {
		return nil, nil, err
	}
	// Refuse rather than warn: a log line is easy to miss, and a CA key
	// that other users can read lets them impersonate every site to every
	// app that trusts it. Checked before LoadOrCreate, so nothing is
	// created in a directory others can write.
	if err := ca.CheckPermissions(dir); err != nil {
		return nil, nil, fmt.Errorf("refusing to use the CA in %s until only its owner can read the key and write the directory:\n%w", dir, err)
	}
	authority, created, err := ca.LoadOrCreate(dir, ca.Options{PermittedHosts: pol.CA.PermittedHosts})
	if err != nil {
		return nil, nil, fmt.Errorf("CA in %s: %w", dir, err)
	}
	if created {
		log.WithField(logfield.CADir, dir).Info("created a new CA; apps must trust it: run `tlsbridge ca install` or export it with `tlsbridge ca export`")
	}
	warnCAExpiry(authority, log)
	var debugf func(string, ...any) // nil: a cache hit formats no line nobody sees
	if log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		debugf = log.Debugf
	}
	cache, err := ca.NewCache(authority, ca.CacheConfig{Logger: debugf, OnMint: mints.Observe})
	if err != nil {
		return nil, nil, fmt.Errorf("leaf cache: %w", err)
	}
	// Debug: how new hosts are signed is a performance detail (ca info
	// shows it as "leaf signing").
	if how := cache.ECDSAIssuer(); how != ca.ECDSAIssuerCAExpired { // warnCAExpiry said so already
		log.Debug(how.Explain())
	}
	return authority, cache, nil
}

// reloadOnHUP swaps in a re-read config on SIGHUP and re-opens the
// [[listener]] ports that changed; an invalid file keeps the policy in force
// and logs every problem. The proxy's own listen address needs a restart.
// It tells systemd READY=1 once SIGHUP is caught (before, a "systemctl
// reload" would kill the process: SIGHUP's default action), and brackets
// each reload with RELOADING=1 and READY=1.
func reloadOnHUP(ctx context.Context, cf commonFlags, srv *bump.Server, listeners *listenerSet, log *logrus.Entry, sd notifier) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sd.ready()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			sd.reloading()
			pol, err := cf.loadPolicy()
			if err != nil {
				log.WithError(err).Error("reload failed; the previous config stays in force")
				sd.ready()
				continue
			}
			if was := srv.Policy().Listen; pol.Listen != was {
				log.Warnf("listen changed from %q to %q: the proxy port is only opened at start; restart tlsbridge to move it", was, pol.Listen)
			}
			srv.SetPolicy(pol)
			listeners.reload(pol)
			warnUnsafe(pol, log)
			log.Info("config reloaded: " + describeConfig(pol))
			sd.ready()
		}
	}
}

// describeConfig says which config is in force and what it holds:
// "config.toml: 2 rules, 1 listener".
func describeConfig(pol *policy.Policy) string {
	src := pol.Path
	if abs, err := filepath.Abs(src); err == nil && src != "" {
		src = abs
	}
	if src == "" {
		src = "built-in defaults (no -config and no ./config.toml)"
	}
	return fmt.Sprintf("%s: %s, %s", src, plural(len(pol.Rules), "rule"), plural(len(pol.Listeners), "listener"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// warnUnsafe logs, at start and after each reload, every setting that
// weakens tlsbridge (verify = false, an upstream min_tls below 1.2, an
// allow_clients that admits everyone on a non-loopback listen), each with
// the key that sets it.
func warnUnsafe(pol *policy.Policy, log *logrus.Entry) {
	for _, w := range pol.Warnings() {
		log.Warn(w.String())
	}
}

// newLogger builds the process's one logger from [log].
func newLogger(c policy.LogConfig, w io.Writer) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetOutput(w)
	switch c.Format {
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	level := c.Level
	if level == "" {
		level = "info"
	}
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	l.SetLevel(lv)
	return logrus.NewEntry(l), nil
}

func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
