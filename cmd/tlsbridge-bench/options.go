package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// options is the parsed command line.
type options struct {
	proxy     string
	target    string
	caFile    string
	version   uint16
	suiteSet  string
	suites    []uint16
	clients   int
	duration  time.Duration
	keepAlive bool
	close     bool
	resume    resumeMode
	hosts     int
	path      string
	pids      []int
	idle      int
	bulk      int64
	json      bool
	label     string
}

// suiteSets are the cipher suite lists a legacy app may offer.
var suiteSets = map[string][]uint16{
	// What a TLS 1.0 client with OpenSSL 1.0 offers: ECDHE-ECDSA,
	// ECDHE-RSA and RSA key exchange, CBC with SHA-1.
	"legacy": {
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	},
	// An app that only knows RSA key exchange (Java 6, Windows XP).
	"rsa": {tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA},
	// A modern app (for bumped TLS 1.2/1.3 runs): Go's defaults, AES-GCM
	// first on hardware with AES instructions.
	"modern": nil,
}

// resumeMode is how an app resumes its TLS sessions (-resume).
type resumeMode int

const (
	resumeOff    resumeMode = iota
	resumeTicket            // RFC 5077 tickets, Go's client cache
	resumeID                // RFC 5246 session IDs, OpenSSL's client
)

func (m resumeMode) String() string {
	return [...]string{"off", "ticket", "id"}[m]
}

// MarshalText lets flag.TextVar print the default.
func (m resumeMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *resumeMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "off", "":
		*m = resumeOff
	case "ticket":
		*m = resumeTicket
	case "id":
		*m = resumeID
	default:
		return fmt.Errorf("%q is not a resumption mode (want off, ticket or id)", b)
	}
	return nil
}

// minResumed is the share of handshakes a -resume run must resume: the
// first handshake of each app is full, the rest should all resume, so
// less means the proxy (or the tool) does not resume and the run measured
// something else.
const minResumed = 0.9

var tlsVersions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func parseOptions(args []string, out io.Writer) (*options, error) {
	fs := flag.NewFlagSet("tlsbridge-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &options{}
	var version, pids, bulk string
	fs.StringVar(&o.proxy, "proxy", "127.0.0.1:3128", "proxy address")
	fs.StringVar(&o.target, "target", "", "CONNECT target host:port (with -hosts N, %d in the host is replaced by 0..N-1)")
	fs.StringVar(&o.caFile, "cacert", "", "PEM file of the CA the app trusts (the proxy's CA)")
	fs.StringVar(&version, "tls", "1.0", "TLS version the app pins: 1.0, 1.1, 1.2 or 1.3")
	fs.StringVar(&o.suiteSet, "suites", "legacy", "cipher suites the app offers: legacy, rsa or modern")
	fs.IntVar(&o.clients, "c", 16, "concurrent clients")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "duration")
	fs.BoolVar(&o.keepAlive, "keepalive", false, "reuse each connection for many requests (else one request per connection)")
	fs.BoolVar(&o.close, "close", false, "send \"Connection: close\" with each one-shot request, as Python's urllib, PHP streams and Java with http.keepAlive=false do (not with -keepalive or -idle)")
	fs.TextVar(&o.resume, "resume", resumeOff, "session resumption: off; ticket (Go's client, session tickets); id (by session ID, no tickets, as Windows XP and Java 6 do: OpenSSL's client, build with -tags openssl); a run that asks for it fails below 90% resumed")
	fs.IntVar(&o.hosts, "hosts", 0, "number of distinct host names (cold-host runs)")
	fs.StringVar(&o.path, "path", "/", "request path")
	fs.StringVar(&pids, "pid", "", "proxy PIDs, comma-separated; each counts with its child processes (squid's helpers): CPU time per operation and memory")
	fs.IntVar(&o.idle, "idle", 0, "instead of a load: open this many connections, one request each, hold them idle and report the proxy's RSS per connection")
	fs.StringVar(&bulk, "bulk", "", "instead of a load: one connection downloads -path, which must be this size (e.g. 256MiB); reports MB/s and proxy CPU s/GiB")
	fs.BoolVar(&o.json, "json", false, "print one JSON line instead of the text report")
	fs.StringVar(&o.label, "label", "", "free text copied into the report (e.g. the proxy's name)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if o.target == "" || o.caFile == "" {
		return nil, errors.New("-target and -cacert are required (e.g. -target origin.test:443 -cacert ca.pem)")
	}
	var ok bool
	if o.version, ok = tlsVersions[version]; !ok {
		return nil, fmt.Errorf("-tls %q: want 1.0, 1.1, 1.2 or 1.3", version)
	}
	if o.suites, ok = suiteSets[o.suiteSet]; !ok {
		return nil, fmt.Errorf("-suites %q: want legacy, rsa or modern", o.suiteSet)
	}
	if o.clients < 1 {
		return nil, fmt.Errorf("-c %d: want at least 1 client", o.clients)
	}
	var err error
	if o.pids, err = parsePIDs(pids); err != nil {
		return nil, err
	}
	if bulk != "" {
		if o.bulk, err = parseSize(bulk); err != nil {
			return nil, fmt.Errorf("-bulk: %w", err)
		}
	}
	if o.bulk > 0 && o.idle > 0 {
		return nil, errors.New("-bulk and -idle are separate modes; pick one")
	}
	if o.resume == resumeID && (o.bulk > 0 || o.idle > 0) {
		return nil, errors.New("-resume id is for load runs (new-conn or -keepalive), not -bulk or -idle")
	}
	if o.resume == resumeID && o.version == tls.VersionTLS13 {
		return nil, errors.New("-resume id: TLS 1.3 has no session-ID resumption; use -tls 1.0, 1.1 or 1.2")
	}
	if o.close && (o.keepAlive || o.idle > 0) {
		return nil, errors.New("-close is for one request per connection; it cannot go with -keepalive or -idle")
	}
	return o, nil
}

// parsePIDs parses "123" or "123,456".
func parsePIDs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var pids []int
	for f := range strings.SplitSeq(s, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pid %q: %q is not a process ID (want e.g. 1234 or 1234,5678)", s, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// parseSize parses a byte count: "1024", "64KiB", "256MiB", "1GiB" (or
// K/M/G, also powers of 1024).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}}
	num, mult := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (want e.g. 1048576, 64KiB, 256MiB or 1GiB)", s)
	}
	return n * mult, nil
}

func tlsName(v uint16) string {
	for name, x := range tlsVersions {
		if x == v {
			return name
		}
	}
	return fmt.Sprintf("0x%04x", v)
}
