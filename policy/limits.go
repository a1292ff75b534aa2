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
}

type fileAuth struct {
	UsersFile string `toml:"users_file"`
	Realm     string `toml:"realm"`
}

func defaultFileLimits() fileLimits {
	return fileLimits{
		HandshakeTimeout: "10s",
		UpstreamTimeout:  "15s",
		IdleTimeout:      "5m",
		DrainTimeout:     "5s",
		MaxHeaderBytes:   64 << 10,
		MaxConnections:   4096,
	}
}

// durationBounds are the accepted ranges of the [limits] durations.
var durationBounds = map[string][2]time.Duration{
	"handshake_timeout": {100 * time.Millisecond, 5 * time.Minute},
	"upstream_timeout":  {100 * time.Millisecond, 5 * time.Minute},
	"idle_timeout":      {time.Second, 24 * time.Hour},
	"drain_timeout":     {0, 10 * time.Minute},
}

// limits checks [limits].
func (v *validator) limits(l fileLimits) {
	for key, s := range map[string]string{
		"handshake_timeout": l.HandshakeTimeout,
		"upstream_timeout":  l.UpstreamTimeout,
		"idle_timeout":      l.IdleTimeout,
		"drain_timeout":     l.DrainTimeout,
	} {
		d, err := time.ParseDuration(s)
		b := durationBounds[key]
		switch {
		case err != nil:
			v.add("limits."+key, ErrInvalid, "%q is not a duration (want e.g. \"10s\", \"500ms\" or \"5m\")", s)
		case d < b[0] || d > b[1]:
			v.add("limits."+key, ErrInvalid, "%v is out of range (want %v to %v)", d, b[0], b[1])
		}
	}
	if l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20 {
		v.add("limits.max_header_bytes", ErrInvalid, "%d is out of range (want 1024 to 1048576)", l.MaxHeaderBytes)
	}
	if l.MaxConnections < 1 {
		v.add("limits.max_connections", ErrInvalid, "%d is out of range (want 1 or more)", l.MaxConnections)
	}
}

// buildLimits converts validated [limits].
func buildLimits(l fileLimits) Limits {
	d := func(s string) time.Duration { x, _ := time.ParseDuration(s); return x }
	return Limits{
		HandshakeTimeout: d(l.HandshakeTimeout),
		UpstreamTimeout:  d(l.UpstreamTimeout),
		IdleTimeout:      d(l.IdleTimeout),
		DrainTimeout:     d(l.DrainTimeout),
		MaxHeaderBytes:   l.MaxHeaderBytes,
		MaxConnections:   l.MaxConnections,
	}
}

// auth checks [auth] and reads its users file.
func (v *validator) auth(a fileAuth) map[string][]byte {
	if a.UsersFile == "" {
		if a.Realm != "" {
			v.add("auth.realm", ErrInvalid, "set without auth.users_file; add users_file or remove realm")
		}
		return nil
	}
	path := resolvePath(v.dir, a.UsersFile)
	users, err := readUsers(path)
	if err != nil {
		v.add("auth.users_file", ErrInvalid, "%q: %v", a.UsersFile, err)
		return nil
	}
	if strings.ContainsAny(a.Realm, "\"\\\r\n") {
		v.add("auth.realm", ErrInvalid, "%q must not contain quotes, backslashes or line breaks", a.Realm)
	}
	return users
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
