package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// fileConfig mirrors the TOML file: strings, ints, bools and pointers, no
// logic. Pointers tell "absent" from "set" where a key overrides a global
// one; the top-level fields start from defaultFileConfig and the decoder
// overwrites only the keys the file sets.
type fileConfig struct {
	Listen       string         `toml:"listen"`
	AllowClients []string       `toml:"allow_clients"`
	ConnectPorts []int          `toml:"connect_ports"`
	CA           fileCA         `toml:"ca"`
	Client       fileClient     `toml:"client"`
	Upstream     fileUpstream   `toml:"upstream"`
	Log          fileLog        `toml:"log"`
	Admin        fileAdmin      `toml:"admin"`
	Limits       fileLimits     `toml:"limits"`
	Auth         fileAuth       `toml:"auth"`
	Rules        []fileRule     `toml:"rule"`
	Listeners    []fileListener `toml:"listener"`
}

type fileCA struct {
	Dir            string   `toml:"dir"`
	LeafKey        string   `toml:"leaf_key"`
	PermittedHosts []string `toml:"permitted_hosts"`
}

// fileClient is [client] and [rule.client].
type fileClient struct {
	MinTLS *string `toml:"min_tls"`
	MaxTLS *string `toml:"max_tls"`
}

// fileUpstream is [upstream]; fileUpstreamOverride adds the per-target keys
// of [rule.upstream] and [listener.upstream].
type fileUpstream struct {
	MinTLS  *string   `toml:"min_tls"`
	MaxTLS  *string   `toml:"max_tls"`
	Verify  *bool     `toml:"verify"`
	CAFiles *[]string `toml:"ca_files"`

	Proxy              *string `toml:"proxy"`
	ProxyAuthFile      *string `toml:"proxy_auth_file"`
	ClientCert         *string `toml:"client_cert"`
	ClientKey          *string `toml:"client_key"`
	FetchIntermediates *bool   `toml:"fetch_intermediates"`
}

type fileUpstreamOverride struct {
	fileUpstream
	Address    *string `toml:"address"`
	ServerName *string `toml:"server_name"`
}

type fileLog struct {
	Format string `toml:"format"`
	Level  string `toml:"level"`
}

type fileAdmin struct {
	Listen     string `toml:"listen"`
	DrainDelay string `toml:"drain_delay"`
}

type fileRule struct {
	Hosts    *[]string            `toml:"hosts"`
	Ports    []int                `toml:"ports"`
	Action   *string              `toml:"action"`
	Client   fileClient           `toml:"client"`
	Upstream fileUpstreamOverride `toml:"upstream"`
}

// fileListener is one [[listener]]. Its upstream key has two spellings:
// the contract's upstream = "host:port" (the target), and the
// [listener.upstream] table of [upstream] keys plus address (the target)
// and server_name. TOML cannot give one key both a string and a table, so
// the decoder keeps it raw and decodeUpstream fills Target or Table.
// UpstreamTLS is the upstream_tls switch, not the table.
type fileListener struct {
	Listen      *string        `toml:"listen"`
	Upstream    toml.Primitive `toml:"upstream"`
	ClientTLS   *bool          `toml:"client_tls"`
	UpstreamTLS *bool          `toml:"upstream_tls"`
	ServerName  *string        `toml:"server_name"`
	ALPN        *[]string      `toml:"alpn"`
	Client      fileClient     `toml:"client"`

	Target *string              `toml:"-"` // upstream = "host:port"
	Table  fileUpstreamOverride `toml:"-"` // [listener.upstream]
}

// defaultFileConfig returns the built-in defaults, the one place they are
// written (the [limits] values come from DefaultLimits), as the TOML
// spells them: Parse decodes a file over this value, so absent keys keep
// their defaults, and Default builds it like any file. They are the
// values of the contract in MISSION.md. Every call returns fresh pointers
// and slices, so decoding over one never changes another.
func defaultFileConfig() *fileConfig {
	return &fileConfig{
		Listen:       "127.0.0.1:3128",
		AllowClients: []string{},
		ConnectPorts: []int{443},
		CA:           fileCA{LeafKey: "auto", PermittedHosts: []string{}},
		Client:       fileClient{MinTLS: ptr("1.0"), MaxTLS: ptr("1.3")},
		Upstream: fileUpstream{
			MinTLS:  ptr("1.2"),
			MaxTLS:  ptr("1.3"),
			Verify:  ptr(true),
			CAFiles: ptr([]string{}),
			// Off by default: fetching sends a plain-HTTP request to a
			// URL the server's certificate names, which a locked-down
			// network may not want, and the real fix is the server's
			// (send the intermediate). See docs/corporate-proxy.md.
			FetchIntermediates: ptr(false),
		},
		Log:    fileLog{Format: "text", Level: "info"},
		Admin:  fileAdmin{DrainDelay: DefaultDrainDelay.String()},
		Limits: defaultFileLimits(),
	}
}

func ptr[T any](v T) *T { return &v }

// Default returns the policy of an empty config file: listen on
// 127.0.0.1:3128, loopback clients only, CONNECT to 443 only, client TLS
// 1.0–1.3, upstream TLS 1.2–1.3 with verification against the system roots,
// the [limits] of [DefaultLimits], no rules (every host gets action auto)
// and no listeners.
func Default() *Policy {
	p, err := build(defaultFileConfig(), "")
	if err != nil {
		// The defaults are constants checked by TestDefault.
		panic("policy: built-in defaults do not build: " + err.Error())
	}
	return p
}

// Load reads the config file at path and parses it with [Parse]. Errors
// name the file; relative paths inside it are resolved against its
// directory.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a TOML config over the defaults and builds the policy,
// parsing each value once. path prefixes error messages and anchors
// relative paths (ca_files, ca.dir, auth.users_file); "" means the current
// directory. The returned error joins every problem found
// ([errors.Join]); each is a [*KeyError] naming the dotted key, such as
// "config.toml: rule[2].upstream.min_tls: ...".
func Parse(data []byte, path string) (*Policy, error) {
	fc, unknown, err := decode(data, path)
	if err != nil {
		return nil, err
	}
	// Unknown keys do not stop the build: one run reports every problem.
	p, err := build(fc, path)
	if err := errors.Join(unknown, err); err != nil {
		return nil, err
	}
	return p, nil
}

// decode runs the TOML decoder over the defaults. A syntax or type error
// stops it (err); unknown keys are returned separately, all at once, so
// the build can still run and report the other problems.
func decode(data []byte, path string) (fc *fileConfig, unknown, err error) {
	fc = defaultFileConfig()
	md, err := toml.Decode(string(data), fc)
	if err != nil {
		return nil, nil, syntaxError(err, path, data)
	}
	var errs []error
	for i := range fc.Listeners {
		if err := fc.Listeners[i].decodeUpstream(&md); err != nil {
			if errors.Is(err, errUpstreamType) {
				err = &KeyError{File: path, Key: fmt.Sprintf("listener[%d].upstream", i), Msg: err.Error(), Err: ErrSyntax}
			} else {
				err = syntaxError(err, path, data) // a bad value inside the table names its key
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keys below a listener upstream that failed to decode would all
		// show up as unknown; the type error above is the real problem.
		return nil, nil, errors.Join(errs...)
	}
	return fc, errors.Join(unknownKeys(&md, path)...), nil
}

// errUpstreamType is decodeUpstream's error for a value that is neither
// spelling of a listener's upstream key.
var errUpstreamType = errors.New(`want a "host:port" string, e.g. upstream = "legacy-api.example.com:443", or a [listener.upstream] table with address = "host:port"`)

// decodeUpstream decodes the listener's raw upstream key into Target or
// Table. The TOML types decide which, never the decoder's error text: an
// absent key or a table decodes into an empty struct (which reads no keys,
// so unknown ones are still reported) and then into Table, whose error
// names the bad key inside; a string is the target; anything else
// (upstream = 443) gives errUpstreamType.
func (l *fileListener) decodeUpstream(md *toml.MetaData) error {
	if md.PrimitiveDecode(l.Upstream, &struct{}{}) == nil {
		return md.PrimitiveDecode(l.Upstream, &l.Table)
	}
	var target string
	if md.PrimitiveDecode(l.Upstream, &target) != nil {
		return errUpstreamType
	}
	l.Target = &target
	return nil
}

// syntaxError turns a TOML decoder error into a *KeyError with the file,
// the line and the last key the decoder saw; a value of the wrong TOML
// type gets the spelling that fixes it (see typeHint). data is the file.
func syntaxError(err error, path string, data []byte) error {
	ke := &KeyError{File: path, Err: ErrSyntax}
	var pe toml.ParseError
	if errors.As(err, &pe) {
		ke.Line = pe.Position.Line
		ke.Key = pe.LastKey
		ke.Msg = pe.Message
		if redefinesListenerUpstream(data, ke.Line) {
			ke.Msg = strings.TrimSuffix(ke.Msg, ".") + `; a [[listener]] names its target either as upstream = "host:port" or as address = "host:port" inside [listener.upstream], not both`
		}
		return ke
	}
	// Type mismatches come as "toml: line N (last key "k"): msg".
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	var line int
	var key, rest string
	if n, _ := fmt.Sscanf(msg, "line %d (last key %q):", &line, &key); n == 2 {
		if i := strings.Index(msg, "): "); i >= 0 {
			rest = msg[i+3:]
		}
		ke.Line, ke.Key, ke.Msg = line, indexArrayKey(key, data, line), rest
		if hint, ok := typeHint(rest, key, valueAt(data, line)); ok {
			ke.Msg = hint
		}
		return ke
	}
	ke.Msg = msg
	return ke
}

// baseDir is the directory relative config paths are resolved against.
func baseDir(path string) string {
	if path == "" {
		return "."
	}
	return filepath.Dir(path)
}

// redefinesListenerUpstream reports whether line of data is a
// [listener.upstream] header in a [[listener]] that already wrote
// upstream = ..., the decoder's "already defined" error that the contract's
// example leads to. It reads the file, not the error text.
func redefinesListenerUpstream(data []byte, line int) bool {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) || tomlLine(lines[line-1]) != "[listener.upstream]" {
		return false
	}
	for i := line - 2; i >= 0; i-- {
		l := tomlLine(lines[i])
		if l == "[[listener]]" {
			return false
		}
		if k, _, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "upstream" {
			return true
		}
	}
	return false
}

// tomlLine is a line of a TOML file without its comment and blanks, for
// the structural checks above: "[ listener.upstream ] # x" gives
// "[listener.upstream]". A "#" inside a string cuts it short, which only
// matters for lines these checks do not look for.
func tomlLine(l string) string {
	l, _, _ = strings.Cut(l, "#")
	return strings.Join(strings.Fields(l), "")
}
