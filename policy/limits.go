package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// Limits are the [limits] section: the timeouts and bounds that keep slow,
// broken or hostile peers from holding the proxy's resources.
type Limits struct {
	// HandshakeTimeout bounds an app's silence: from accepting a connection
	// to a complete request header, and from CONNECT to a complete TLS
	// handshake.
	HandshakeTimeout time.Duration
	// UpstreamTimeout bounds the upstream TCP connect plus TLS handshake.
	UpstreamTimeout time.Duration
	// IdleTimeout closes tunnels, bumped and keep-alive connections that
	// carried no bytes either way for this long.
	IdleTimeout time.Duration
	// DrainTimeout is how long a shutdown waits for connections in flight.
	DrainTimeout time.Duration
	// MaxHeaderBytes bounds a proxy request's header.
	MaxHeaderBytes int
	// MaxConnections bounds concurrent app connections (proxy port and
	// listeners together); more are refused with 503.
	MaxConnections int
	// SessionLifetime bounds how long an app can resume a TLS session (by
	// ticket or session ID) instead of a full handshake; 0 turns
	// resumption off.
	SessionLifetime time.Duration
	// SessionCacheSize bounds the sessions kept for resumption by session
	// ID (the legacy engine's cache; crypto/tls keeps none, its tickets
	// carry the session); the least recently used go first.
	SessionCacheSize int
}

// Auth is the [auth] section: proxy authentication (Basic, RFC 7617, in
// Proxy-Authorization, RFC 9110 11.7.1). Empty UsersFile means none.
type Auth struct {
	// UsersFile is the absolute path of the htpasswd-style file.
	UsersFile string
	// Realm is sent in Proxy-Authenticate.
	Realm string
	// Users maps a user name to its bcrypt hash ("$2y$..."), as in the file.
	Users map[string][]byte
}

// Enabled reports whether the proxy asks for credentials.
func (a *Auth) Enabled() bool { return len(a.Users) > 0 }

type fileLimits struct {
	HandshakeTimeout string `toml:"handshake_timeout"`
	UpstreamTimeout  string `toml:"upstream_timeout"`
	IdleTimeout      string `toml:"idle_timeout"`
	DrainTimeout     string `toml:"drain_timeout"`
	MaxHeaderBytes   int    `toml:"max_header_bytes"`
	MaxConnections   int    `toml:"max_connections"`
	SessionLifetime  string `toml:"session_lifetime"`
	SessionCacheSize int    `toml:"session_cache_size"`
}

type fileAuth struct {
	UsersFile string `toml:"users_file"`
	Realm     string `toml:"realm"`
}

// DefaultLimits returns the [limits] of a config that does not set them,
// the one place they are written: the file's defaults are decoded over
// them, and a bump.Config field left zero can take its value from here.
func DefaultLimits() Limits {
	return Limits{
		HandshakeTimeout: 10 * time.Second,
		UpstreamTimeout:  15 * time.Second,
		IdleTimeout:      5 * time.Minute,
		DrainTimeout:     5 * time.Second,
		MaxHeaderBytes:   64 << 10,
		MaxConnections:   4096,
		SessionLifetime:  time.Hour,
		SessionCacheSize: 20000,
	}
}

// defaultFileLimits spells DefaultLimits as the file does.
func defaultFileLimits() fileLimits {
	d := DefaultLimits()
	return fileLimits{
		HandshakeTimeout: d.HandshakeTimeout.String(),
		UpstreamTimeout:  d.UpstreamTimeout.String(),
		IdleTimeout:      d.IdleTimeout.String(),
		DrainTimeout:     d.DrainTimeout.String(),
		MaxHeaderBytes:   d.MaxHeaderBytes,
		MaxConnections:   d.MaxConnections,
		SessionLifetime:  d.SessionLifetime.String(),
		SessionCacheSize: d.SessionCacheSize,
	}
}

// minSessionLifetime is the shortest session_lifetime but 0: the ticket
// keys rotate every half of it, and OpenSSL counts whole seconds.
const minSessionLifetime = 10 * time.Second

// maxSessionCache bounds limits.session_cache_size: a session takes about
// 0.5 KiB, so a million is 0.5 GiB.
const maxSessionCache = 1_000_000

// limits parses [limits], each duration once, checking its range.
func (b *builder) limits(l fileLimits) Limits {
	lim := Limits{
		HandshakeTimeout: b.duration("handshake_timeout", l.HandshakeTimeout, 100*time.Millisecond, 5*time.Minute),
		UpstreamTimeout:  b.duration("upstream_timeout", l.UpstreamTimeout, 100*time.Millisecond, 5*time.Minute),
		IdleTimeout:      b.duration("idle_timeout", l.IdleTimeout, time.Second, 24*time.Hour),
		DrainTimeout:     b.duration("drain_timeout", l.DrainTimeout, 0, 10*time.Minute),
		MaxHeaderBytes:   l.MaxHeaderBytes,
		MaxConnections:   l.MaxConnections,
		SessionLifetime:  b.duration("session_lifetime", l.SessionLifetime, 0, 24*time.Hour),
		SessionCacheSize: l.SessionCacheSize,
	}
	if l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20 {
		b.add("limits.max_header_bytes", ErrInvalid, "%d is out of range (want 1024 to 1048576)", l.MaxHeaderBytes)
	}
	if l.MaxConnections < 1 {
		b.add("limits.max_connections", ErrInvalid, "%d is out of range (want 1 or more)", l.MaxConnections)
	}
	if lim.SessionLifetime > 0 && lim.SessionLifetime < minSessionLifetime {
		b.add("limits.session_lifetime", ErrInvalid, "%v is too short (want \"0s\" for no resumption, or %v to 24h)", lim.SessionLifetime, minSessionLifetime)
	}
	if l.SessionCacheSize < 1 || l.SessionCacheSize > maxSessionCache {
		b.add("limits.session_cache_size", ErrInvalid, "%d is out of range (want 1 to %d; session_lifetime = \"0s\" turns resumption off)", l.SessionCacheSize, maxSessionCache)
	}
	return lim
}

// duration parses the [limits] duration at key, which must lie in lo..hi.
func (b *builder) duration(key, s string, lo, hi time.Duration) time.Duration {
	return b.durationKey("limits."+key, s, lo, hi)
}

// durationKey parses the duration at the dotted key, which must lie in
// lo..hi.
func (b *builder) durationKey(key, s string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		b.add(key, ErrInvalid, "%q is not a duration (want e.g. \"10s\", \"500ms\" or \"5m\")", s)
	case d < lo || d > hi:
		b.add(key, ErrInvalid, "%v is out of range (want %v to %v)", d, lo, hi)
	}
	return d
}

// auth reads [auth] and its users file.
func (b *builder) auth(a fileAuth) Auth {
	if a.UsersFile == "" {
		if a.Realm != "" {
			b.add("auth.realm", ErrInvalid, "set without auth.users_file; add users_file or remove realm")
		}
		return Auth{}
	}
	path := resolvePath(b.dir, a.UsersFile)
	users, err := readUsers(path)
	if err != nil {
		b.add("auth.users_file", ErrInvalid, "%q: %v", a.UsersFile, err)
		return Auth{}
	}
	if strings.ContainsAny(a.Realm, "\"\\\r\n") {
		b.add("auth.realm", ErrInvalid, "%q must not contain quotes, backslashes or line breaks", a.Realm)
	}
	realm := a.Realm
	if realm == "" {
		realm = "tlsbridge"
	}
	return Auth{UsersFile: path, Realm: realm, Users: users}
}

// readUsers parses an htpasswd file with bcrypt hashes (htpasswd -B):
// "user:$2y$10$...", one per line; blank lines and # comments are skipped.
// Other hash schemes (MD5 "$apr1$", SHA1 "{SHA}", crypt) are refused: they
// are fast to brute-force.
func readUsers(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	users := make(map[string][]byte)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("line %d: want user:bcrypt-hash (make one with htpasswd -nB USER)", n)
		case !isBcrypt(hash):
			return nil, fmt.Errorf("line %d: user %q: the hash is not bcrypt ($2a$, $2b$ or $2y$); re-create it with htpasswd -nB %s", n, user, user)
		case users[user] != nil:
			return nil, fmt.Errorf("line %d: user %q is listed twice", n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("no users in the file (add lines made with htpasswd -nB USER)")
	}
	return users, nil
}

func isBcrypt(h string) bool {
	return len(h) == 60 && (strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$"))
}
