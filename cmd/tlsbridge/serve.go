package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/internal/logfield"
	"github.com/tlsbridge/tlsbridge/policy"
)

// runServe is "tlsbridge run": load config and CA, listen, serve until ctx
// ends (SIGINT/SIGTERM); SIGHUP reloads the config.
func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	return serve(ctx, args, stderr, nil)
}

// serve is runServe with its log going to stderr. If reloads is not nil, it
// is where reload requests come from instead of SIGHUP: the Windows
// service's ParamChange (service.go).
func serve(ctx context.Context, args []string, stderr io.Writer, reloads <-chan os.Signal) error {
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
		Policy:    pol,
		Certs:     cache,
		Log:       log,
		LeafMints: mints,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()
	warnUnsafe(pol, log)
	sd := newNotifier(log) // systemd Type=notify, and /readyz
	// The admin listener outlives ctx: /healthz and /readyz answer
	// through the whole drain, and the deferred stopAdmin closes it last.
	stopAdmin, err := startAdmin(context.WithoutCancel(ctx), pol.Admin.Listen, authority, srv, sd.readyz, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopAdmin()

	// Subscribed before the line that says tlsbridge is up, so a SIGHUP
	// sent after it is never lost.
	hup := reloads
	if hup == nil {
		c := make(chan os.Signal, 1)
		notifyReload(c) // signal_<goos>.go
		defer signal.Stop(c)
		hup = c
	}
	if e := bump.LegacyEngine(); e != "" {
		log.Infof("legacy TLS engine: %s serves SSLv2-format hellos and apps below TLS 1.2 (session-ID resumption); crypto/tls the rest", e)
	} else {
		log.Info("legacy TLS engine: none in this build (make build-openssl adds it); crypto/tls serves every app, SSLv2-format hellos are refused")
	}
	log.WithFields(logrus.Fields{logfield.Listen: ln.Addr().String(), logfield.CADir: authority.Dir}).Info("tlsbridge listening")
	log.Infof("apps use it with HTTPS_PROXY=http://%s and trust %s (tlsbridge ca install, or tlsbridge ca export -out ca.pem)", ln.Addr(), authority.CertPath())

	// The ports serve until serveCtx ends: [admin] drain_delay after ctx
	// (SIGTERM), so /readyz fails before they close (drainAfter).
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	listeners := &listenerSet{ctx: serveCtx, wg: &wg, srv: srv, log: log}
	listeners.start(pol, lns)
	wg.Go(func() { reloadOnHUP(serveCtx, hup, cf, srv, cache, listeners, log, sd) })
	wg.Go(func() { drainAfter(ctx, serveCtx, cancel, srv, log, sd) })
	// READY=1 now: the ports are open, and SIGHUP has been caught since
	// before the listening line (its default action would kill the
	// process on a "systemctl reload").
	sd.ready()
	err = srv.Serve(serveCtx, ln)
	cancel()
	wg.Wait()
	log.Info("tlsbridge stopped")
	return err
}

// drainAfter starts the drain when ctx ends (SIGTERM, SIGINT, a service
// stop): /readyz answers 503 from then on, and if something has polled
// /readyz, the ports keep accepting for [admin] drain_delay, so a load
// balancer takes the instance out of rotation before connections to it are
// refused. Then closeServe closes the ports and the connections in flight
// get [limits] drain_timeout. It returns early if serveCtx ends first (the
// proxy stopped on its own).
func drainAfter(ctx, serveCtx context.Context, closeServe func(), srv *bump.Server, log *logrus.Entry, sd *notifier) {
	select {
	case <-ctx.Done():
	case <-serveCtx.Done():
		return
	}
	sd.stopping() // the drain starts: /readyz fails
	if d := srv.Policy().Admin.DrainDelay; d > 0 && sd.watched.Load() {
		log.Infof("draining: /readyz answers 503; the ports close in %v ([admin] drain_delay), then connections in flight get %v ([limits] drain_timeout)",
			d, srv.Policy().Limits.DrainTimeout)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-serveCtx.Done():
			t.Stop()
		}
	}
	closeServe()
}

// openCA resolves the CA directory, creates the CA on first run and starts
// the leaf cache, whose mints are timed into mints.
func openCA(flagDir string, pol *policy.Policy, mints *bump.LeafMints, log *logrus.Entry) (*ca.Authority, *ca.Cache, error) {
	dir, from, err := ca.DirFrom(flagDir, pol.CA.Dir)
	if err != nil {
		return nil, nil, err
	}
	log.WithField(logfield.CADir, dir).Info(describeCADir(from))
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

// reloadOnHUP applies a re-read config on each signal from hup (see
// reload), bracketed for systemd by RELOADING=1 and READY=1.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, cf commonFlags, srv *bump.Server, cache *ca.Cache, listeners *listenerSet, log *logrus.Entry, sd *notifier) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			sd.reloading()
			reload(cf, srv, listeners, log)
			reloadCA(cache, log)
			sd.ready()
		}
	}
}

// reload re-reads the config and applies it whole: the policy with its
// limits, transports and auth (one snapshot, bump.Server.SetPolicy), the
// [[listener]] ports that changed, and the log level. What only a restart
// can change is named, key by key, in one warning. An invalid file keeps
// the config in force and logs every problem.
func reload(cf commonFlags, srv *bump.Server, listeners *listenerSet, log *logrus.Entry) {
	pol, err := cf.loadPolicy()
	if err != nil {
		// One line per problem: a multi-line error in one field would
		// be printed as a single line full of \n.
		for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
			log.Error("reload: " + line)
		}
		log.Error("reload failed; the previous config stays in force (fix the file, then send SIGHUP again)")
		return
	}
	old := srv.Policy()
	if keys := restartKeys(old, pol); len(keys) > 0 {
		log.Warnf("reload: %s changed; tlsbridge applies %s only at start: restart it for the new value (everything else is applied now)",
			strings.Join(keys, ", "), map[bool]string{true: "it", false: "them"}[len(keys) == 1])
	}
	srv.SetPolicy(pol)
	listeners.reload(pol)
	if lv, err := logrus.ParseLevel(levelOf(pol.Log)); err == nil {
		log.Logger.SetLevel(lv)
	}
	warnUnsafe(pol, log)
	log.Info("config reloaded: " + describeConfig(pol))
}

// reloadCA re-reads the CA directory and, if its files changed (a rotated
// sub-CA: tlsbridge ca import -force), makes the leaf cache sign with the
// new CA: its cached leaves are dropped, new connections get leaves from
// the new CA, and open connections keep the leaf they have. A CA that
// cannot be loaded, or whose files others could read or replace, keeps
// the current one in use. The admin listener's /ca.pem keeps serving the
// root it started with (a new root needs a restart, and new trust in
// every app anyway).
func reloadCA(cache *ca.Cache, log *logrus.Entry) {
	cur := cache.Authority()
	e := log.WithField(logfield.CADir, cur.Dir)
	if err := ca.CheckPermissions(cur.Dir); err != nil {
		e.WithError(err).Error("reload: the CA directory is not protected from other users; the current CA stays in use (fix the modes, then send SIGHUP again)")
		return
	}
	a, err := ca.Load(cur.Dir)
	if err != nil {
		e.WithError(err).Error("reload: the CA cannot be loaded; the current CA stays in use (fix it, then send SIGHUP again)")
		return
	}
	if sameCA(cur, a) {
		return
	}
	if err := cache.SetAuthority(a); err != nil {
		e.WithError(err).Error("reload: the current CA stays in use")
		return
	}
	warnCAExpiry(a, log)
	e.Infof("reload: new CA %q (apps trust the root %q): new connections get leaves from it, open ones keep theirs", a.Cert.Subject.CommonName, a.Root().Subject.CommonName)
	if !bytes.Equal(a.Root().Raw, cur.Root().Raw) {
		e.Warnf("reload: the new CA chains to another root, %q; apps that trust only %q reject its leaves until they trust the new root", a.Root().Subject.CommonName, cur.Root().Subject.CommonName)
	}
}

// sameCA reports whether a and b are the same CA certificate and chain.
func sameCA(a, b *ca.Authority) bool {
	if !bytes.Equal(a.Cert.Raw, b.Cert.Raw) || len(a.Chain()) != len(b.Chain()) {
		return false
	}
	for i, c := range a.Chain() {
		if !bytes.Equal(c.Raw, b.Chain()[i].Raw) {
			return false
		}
	}
	return true
}

// restartKeys names the keys whose change a reload cannot apply: the
// ports opened at start, the CA (created and loaded at start), the log
// format, and the [limits] that http.Server applies to plain-HTTP proxy
// requests (CONNECTs and listeners take the new limits at once).
func restartKeys(old, pol *policy.Policy) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(old.Listen != pol.Listen, fmt.Sprintf("listen (%q, still serving %q)", pol.Listen, old.Listen))
	add(old.Admin.Listen != pol.Admin.Listen, fmt.Sprintf("admin.listen (%q, still serving %q)", pol.Admin.Listen, old.Admin.Listen))
	add(old.CA.Dir != pol.CA.Dir, "ca.dir")
	add(!slices.Equal(old.CA.PermittedHosts, pol.CA.PermittedHosts), "ca.permitted_hosts")
	add(old.Log.Format != pol.Log.Format, "log.format")
	ol, nl := old.Limits, pol.Limits
	add(ol.HandshakeTimeout != nl.HandshakeTimeout, "limits.handshake_timeout (for plain http:// requests; CONNECTs use the new value)")
	add(ol.IdleTimeout != nl.IdleTimeout, "limits.idle_timeout (for plain http:// keep-alive; CONNECTs use the new value)")
	add(ol.MaxHeaderBytes != nl.MaxHeaderBytes, "limits.max_header_bytes (for plain http:// requests; CONNECTs use the new value)")
	return keys
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
	lv, err := logrus.ParseLevel(levelOf(c))
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	l.SetLevel(lv)
	return logrus.NewEntry(l), nil
}

// levelOf is the [log] level, "info" when unset.
func levelOf(c policy.LogConfig) string {
	if c.Level == "" {
		return "info"
	}
	return c.Level
}

func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
