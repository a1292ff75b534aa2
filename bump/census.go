package bump

import (
	"cmp"
	"container/list"
	"crypto/tls"
	"maps"
	"slices"
	"sync"
	"time"
)

// The legacy-TLS census (issue 17): which apps still speak TLS 1.0 or 1.1,
// to which hosts, and what broke. Every connection is counted once, at the
// line where it is counted in the metrics (metrics.access), under its app
// identity (appid.go) and destination host. Unlike the metrics it has a row
// per app and host, so it is bounded: censusMax rows, the least recently
// seen evicted (and counted) when a new one needs room. It lives in the
// Server, not in the policy snapshot, so a reload keeps it; a restart
// starts it over. The admin listener serves it (censuspage.go).

// Census bounds.
const (
	censusMax      = 1024 // app × host rows
	censusFailures = 20   // recent failures kept
	censusMinutes  = 60   // the chart's window, in one-minute buckets
)

// Series of the chart: the TLS version the app used (negotiated, or the
// highest it offered when tlsbridge did not terminate its TLS).
var censusSeries = []string{"1.0", "1.1", "1.2", "1.3", "none"}

// censusKey is one row: an app and a destination.
type censusKey struct {
	app  appKey
	host string
	port int
}

// censusRow is what the census knows about one app and host.
type censusRow struct {
	key          censusKey
	app          appID
	first, last  time.Time
	conns        uint64
	maxOffered   uint16 // the highest version the app offered, over its connections
	clientTLS    uint16 // the last version negotiated with the app
	clientCipher uint16
	upstreamTLS  uint16 // the last version negotiated with the server
	actions      map[string]uint64
	failures     map[string]uint64 // reason → count
	lastFailure  *censusFailure
	failing      bool // the last connection failed
}

// censusFailure is one failed connection, with what classify said.
type censusFailure struct {
	time               time.Time
	app                appID
	host               string
	port               int
	side, reason       string
	cause, fix         string
	clientTLS, offered uint16
}

// censusMinute counts one minute's connections per series.
type censusMinute struct {
	minute int64 // Unix minutes; a bucket of another minute is stale
	counts [5]uint64
}

// census is the bounded table; it is safe for concurrent use.
type census struct {
	mu      sync.Mutex
	max     int
	rows    map[censusKey]*list.Element // of *censusRow
	lru     list.List                   // front: most recently seen
	evicted uint64
	total   uint64
	fails   []censusFailure // ring, newest at (next-1)
	next    int
	chart   [censusMinutes]censusMinute
	now     func() time.Time
	apps    *appResolver
}

// newCensus returns an empty census of at most max rows; apps, if
// non-nil, is the resolver whose unattributed count the view shows.
func newCensus(max int, apps *appResolver) *census {
	return &census{max: max, rows: make(map[censusKey]*list.Element), now: time.Now, apps: apps}
}

// censusObs is what one ended connection tells the census, copied from its
// connInfo when it ends (the identity may arrive later).
type censusObs struct {
	at                       time.Time
	host                     string
	port                     int
	action                   string
	offered                  uint16
	clientTLS, clientCipher  uint16
	upstreamTLS              uint16
	side, reason, cause, fix string
}

// observation copies what the census needs from ci; v is the verdict of a
// failed connection (nil when it did not fail).
func observation(ci *connInfo, side string, v *verdict) censusObs {
	o := censusObs{at: time.Now(), host: ci.host, port: ci.port, action: ci.action,
		offered: ci.clientMax, clientTLS: ci.clientTLS, clientCipher: ci.clientCipher, upstreamTLS: ci.upstreamTLS}
	if v != nil {
		o.side, o.reason, o.cause, o.fix = side, v.reason, v.cause, v.fix
		if o.fix == "" {
			o.fix = v.hint // app-facing verdicts have a hint, not a fix
		}
		if o.cause == "" {
			o.cause = failureCause(side, v.reason)
		}
	}
	return o
}

// failureCause says what failed when the verdict has no cause of its own
// (app-facing failures, whose log line has the error).
func failureCause(side, reason string) string {
	if side == sideApp {
		return "the app's TLS handshake with tlsbridge failed (" + reason + ")"
	}
	return "the connection to the server failed (" + reason + ")"
}

// add counts one connection of app.
func (c *census) add(app appID, o censusObs) {
	k := censusKey{app: app.key(), host: o.host, port: o.port}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	c.countMinuteLocked(o)
	var r *censusRow
	if el, ok := c.rows[k]; ok {
		r = el.Value.(*censusRow)
		c.lru.MoveToFront(el)
	} else {
		if len(c.rows) >= c.max {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.rows, old.Value.(*censusRow).key)
			c.evicted++
		}
		r = &censusRow{key: k, first: o.at, actions: make(map[string]uint64, 1)}
		c.rows[k] = c.lru.PushFront(r)
	}
	r.app = app // the newest PID and executable
	r.last = o.at
	r.conns++
	r.actions[o.action]++
	r.maxOffered = max(r.maxOffered, o.offered)
	if o.clientTLS != 0 {
		r.clientTLS, r.clientCipher = o.clientTLS, o.clientCipher
	}
	if o.upstreamTLS != 0 {
		r.upstreamTLS = o.upstreamTLS
	}
	r.failing = o.reason != ""
	if o.reason == "" {
		return
	}
	if r.failures == nil {
		r.failures = make(map[string]uint64, 1)
	}
	r.failures[o.reason]++
	f := censusFailure{time: o.at, app: app, host: o.host, port: o.port, side: o.side, reason: o.reason,
		cause: o.cause, fix: o.fix, clientTLS: o.clientTLS, offered: o.offered}
	r.lastFailure = &f
	if len(c.fails) < censusFailures {
		c.fails = append(c.fails, f)
		c.next = len(c.fails) % censusFailures
	} else {
		c.fails[c.next] = f
		c.next = (c.next + 1) % censusFailures
	}
}

// countMinuteLocked adds o to the chart's bucket of its minute.
func (c *census) countMinuteLocked(o censusObs) {
	m := o.at.Unix() / 60
	b := &c.chart[m%censusMinutes]
	if b.minute != m {
		*b = censusMinute{minute: m}
	}
	b.counts[seriesIndex(o)]++
}

// seriesIndex is o's series in censusSeries.
func seriesIndex(o censusObs) int {
	v := o.clientTLS
	if v == 0 {
		v = o.offered
	}
	switch v {
	case tls.VersionTLS10:
		return 0
	case tls.VersionTLS11:
		return 1
	case tls.VersionTLS12:
		return 2
	case tls.VersionTLS13:
		return 3
	}
	return 4
}

// The census as the page, /census.json and /census.csv show it. Versions
// are "1.0" … "1.3" ("none": not seen, e.g. a tunnel that was not peeked).

type censusView struct {
	Generated   time.Time `json:"generated"`
	Capacity    int       `json:"capacity"`
	Rows        int       `json:"rows"`
	Evicted     uint64    `json:"evicted"`
	Connections uint64    `json:"connections"`
	// Unattributed counts local connections whose process was not looked
	// up (the resolver was over its CPU budget, or its queue was full):
	// they are under their address.
	Unattributed uint64              `json:"unattributed"`
	Apps         []censusAppView     `json:"apps"`
	Failures     []censusFailureView `json:"recent_failures"`
	Chart        censusChartView     `json:"chart"`

	// Headline numbers: apps whose highest offered version is TLS 1.0,
	// TLS 1.1, and apps whose last connection to some host failed.
	NeedTLS10 int `json:"apps_need_tls10"`
	NeedTLS11 int `json:"apps_need_tls11"`
	Failing   int `json:"apps_failing"`
}

type censusAppView struct {
	App         string           `json:"app"`
	Kind        string           `json:"kind"` // user, process or address
	PID         int              `json:"pid,omitempty"`
	UID         *int             `json:"uid,omitempty"`
	User        string           `json:"user,omitempty"`
	Exe         string           `json:"exe,omitempty"`
	Addr        string           `json:"address,omitempty"`
	MaxOffered  string           `json:"max_offered_tls"`
	maxOffered  uint16           // MaxOffered's version, for the headline and sorting
	Legacy      bool             `json:"legacy"` // highest offered version below TLS 1.2
	Connections uint64           `json:"connections"`
	Failing     bool             `json:"failing"`
	FirstSeen   time.Time        `json:"first_seen"`
	LastSeen    time.Time        `json:"last_seen"`
	Hosts       []censusHostView `json:"hosts"`
}

type censusHostView struct {
	Host         string             `json:"host"`
	Port         int                `json:"port"`
	FirstSeen    time.Time          `json:"first_seen"`
	LastSeen     time.Time          `json:"last_seen"`
	Connections  uint64             `json:"connections"`
	MaxOffered   string             `json:"max_offered_tls"`
	ClientTLS    string             `json:"client_tls"`
	ClientCipher string             `json:"client_cipher,omitempty"`
	UpstreamTLS  string             `json:"upstream_tls"`
	Actions      map[string]uint64  `json:"actions"`
	Failures     map[string]uint64  `json:"failures,omitempty"`
	LastFailure  *censusFailureView `json:"last_failure,omitempty"`
	Failing      bool               `json:"failing"`
}

type censusFailureView struct {
	Time      time.Time `json:"time"`
	App       string    `json:"app"`
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Side      string    `json:"side"` // app or upstream
	Reason    string    `json:"reason"`
	Cause     string    `json:"cause"`
	Fix       string    `json:"fix"`
	ClientTLS string    `json:"client_tls"`
}

// censusChartView is connections per minute for the last hour, oldest
// first, one slice per series.
type censusChartView struct {
	Start  time.Time           `json:"start"` // the first minute
	Series []string            `json:"series"`
	Counts map[string][]uint64 `json:"counts"`
}

// view copies the census for display; apps sorted by last seen, newest
// first, their hosts likewise.
// Only the copy of the raw rows is made under the lock, so a page load
// holds up the connections' add for as little as it can.
func (c *census) view() censusView {
	c.mu.Lock()
	now := c.now()
	v := censusView{Generated: now, Capacity: c.max, Rows: len(c.rows), Evicted: c.evicted, Connections: c.total}
	rows := make([]censusRow, 0, len(c.rows))
	for el := c.lru.Front(); el != nil; el = el.Next() {
		r := *el.Value.(*censusRow)
		r.actions, r.failures = maps.Clone(r.actions), maps.Clone(r.failures) // add writes them in place
		rows = append(rows, r)                                                // lastFailure: add replaces, never writes it
	}
	fails := make([]censusFailure, 0, len(c.fails))
	for i := range c.fails {
		fails = append(fails, c.fails[(c.next-1-i+2*len(c.fails))%len(c.fails)]) // newest first
	}
	chart := c.chart
	c.mu.Unlock()

	if c.apps != nil {
		v.Unattributed = c.apps.unattributed.Load()
	}
	apps := map[appKey]*censusAppView{}
	for i := range rows {
		r := &rows[i]
		a := apps[r.key.app]
		if a == nil {
			a = appView(r.app)
			a.FirstSeen = r.first
			apps[r.key.app] = a
		}
		h := censusHostView{Host: r.key.host, Port: r.key.port, FirstSeen: r.first, LastSeen: r.last,
			Connections: r.conns, MaxOffered: versionLabel(r.maxOffered), ClientTLS: versionLabel(r.clientTLS),
			UpstreamTLS: versionLabel(r.upstreamTLS), Actions: r.actions, Failures: r.failures, Failing: r.failing}
		if r.clientCipher != 0 {
			h.ClientCipher = tls.CipherSuiteName(r.clientCipher)
		}
		if r.lastFailure != nil {
			fv := failureView(*r.lastFailure)
			h.LastFailure = &fv
		}
		a.Hosts = append(a.Hosts, h)
		a.Connections += r.conns
		a.Failing = a.Failing || r.failing
		a.LastSeen = later(a.LastSeen, r.last)
		if r.first.Before(a.FirstSeen) {
			a.FirstSeen = r.first
		}
		a.maxOffered = max(a.maxOffered, r.maxOffered)
	}
	for _, a := range apps {
		o := a.maxOffered
		a.MaxOffered = versionLabel(o)
		a.Legacy = o != 0 && o < tls.VersionTLS12 // SSL 3.0 too
		switch o {
		case tls.VersionTLS10:
			v.NeedTLS10++
		case tls.VersionTLS11:
			v.NeedTLS11++
		}
		if a.Failing {
			v.Failing++
		}
		v.Apps = append(v.Apps, *a)
	}
	slices.SortFunc(v.Apps, func(x, y censusAppView) int {
		return cmp.Or(y.LastSeen.Compare(x.LastSeen), cmp.Compare(x.App, y.App))
	})
	for _, f := range fails {
		v.Failures = append(v.Failures, failureView(f))
	}
	min0 := now.Unix()/60 - (censusMinutes - 1)
	v.Chart = censusChartView{Start: time.Unix(min0*60, 0).UTC(), Series: censusSeries, Counts: map[string][]uint64{}}
	for si, s := range censusSeries {
		counts := make([]uint64, censusMinutes)
		for i := range counts {
			if b := chart[(min0+int64(i))%censusMinutes]; b.minute == min0+int64(i) {
				counts[i] = b.counts[si]
			}
		}
		v.Chart.Counts[s] = counts
	}
	return v
}

func appView(id appID) *censusAppView {
	a := &censusAppView{App: id.Name, Kind: id.Kind, Addr: id.Addr, MaxOffered: "none"}
	if id.Kind == appProcess {
		uid := id.UID
		a.PID, a.UID, a.User, a.Exe = id.PID, &uid, id.User, id.Exe
	}
	return a
}

func failureView(f censusFailure) censusFailureView {
	cl := f.clientTLS
	if cl == 0 {
		cl = f.offered
	}
	return censusFailureView{Time: f.time, App: f.app.Name, Host: f.host, Port: f.port, Side: f.side,
		Reason: f.reason, Cause: f.cause, Fix: f.fix, ClientTLS: versionLabel(cl)}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
