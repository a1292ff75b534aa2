package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
	Listen string `toml:"listen"`
}

type fileRule struct {
	Hosts    *[]string            `toml:"hosts"`
	Ports    []int                `toml:"ports"`
	Action   *string              `toml:"action"`
	Client   fileClient           `toml:"client"`
	Upstream fileUpstreamOverride `toml:"upstream"`
}

// fileListener is one [[listener]]. Its "upstream" key is either the
// target "host:port" or the [listener.upstream] table (TOML cannot hold
// both under one key, see decodeUpstream), so it is decoded in a second
// step into UpstreamAddr or UpstreamSettings. UpstreamTLS is the
// upstream_tls switch, not the table.
type fileListener struct {
	Listen      *string        `toml:"listen"`
	Upstream    toml.Primitive `toml:"upstream"`
	ClientTLS   *bool          `toml:"client_tls"`
	UpstreamTLS *bool          `toml:"upstream_tls"`
	ServerName  *string        `toml:"server_name"`
	ALPN        *[]string      `toml:"alpn"`
	Client      fileClient     `toml:"client"`

	UpstreamAddr     *string              `toml:"-"`
	UpstreamSettings fileUpstreamOverride `toml:"-"`
}

// defaultFileConfig returns the built-in defaults, the same values as the
// contract in MISSION.md. Every call returns fresh pointers and slices, so
// decoding over one never changes another.
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
		},
		Log:    fileLog{Format: "text", Level: "info"},
		Limits: defaultFileLimits(),
	}
}

func ptr[T any](v T) *T { return &v }

// Default returns the policy of an empty config file: listen on
// 127.0.0.1:3128, loopback clients only, CONNECT to 443 only, client TLS
// 1.0–1.3, upstream TLS 1.2–1.3 with verification against the system roots,
// no rules (every host gets action auto) and no listeners.
func Default() *Policy {
	p, err := Parse(nil, "")
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

// Parse decodes a TOML config over the defaults, validates it and builds the
// policy. path prefixes error messages and anchors relative paths (ca_files,
// ca.dir); "" means the current directory. The returned error joins every
// problem found ([errors.Join]); each is a [*KeyError] naming the dotted key,
// such as "config.toml: rule[2].upstream.min_tls: ...".
func Parse(data []byte, path string) (*Policy, error) {
	fc, unknown, err := decode(data, path)
	if err != nil {
		return nil, err
	}
	// Unknown keys do not stop validation: one run reports every problem.
	val, err := fc.validate(path)
	if err := errors.Join(unknown, err); err != nil {
		return nil, err
	}
	p, err := build(fc, path, val)
	if err != nil {
		// validate accepts only what build can use.
		return nil, fmt.Errorf("build policy from %s: %w", displayPath(path), err)
	}
	return p, nil
}

// decode runs the TOML decoder over the defaults. A syntax or type error
// stops it (err); unknown keys are returned separately, all at once, so
// validation can still run and report the other problems.
func decode(data []byte, path string) (fc *fileConfig, unknown, err error) {
	fc = defaultFileConfig()
	md, err := toml.Decode(string(data), fc)
	if err != nil {
		return nil, nil, syntaxError(err, path, data)
	}
	var errs []error
	for i := range fc.Listeners {
		if err := fc.Listeners[i].decodeUpstream(&md); err != nil {
			// A wrongly typed key inside the [listener.upstream] table is
			// reported like any other; errors.Unwrap is the decoder's error.
			if ke, ok := syntaxError(errors.Unwrap(err), path, data).(*KeyError); ok && strings.HasPrefix(ke.Key, "listener") && strings.Count(ke.Key, ".") >= 2 {
				errs = append(errs, ke)
				continue
			}
			errs = append(errs, &KeyError{File: path, Key: fmt.Sprintf("listener[%d].upstream", i), Msg: err.Error(), Err: ErrSyntax})
		}
	}
	if len(errs) > 0 {
		// Keys below a listener upstream that failed to decode would all
		// show up as unknown; the type error above is the real problem.
		return nil, nil, errors.Join(errs...)
	}
	return fc, errors.Join(unknownKeys(&md, path)...), nil
}

// decodeUpstream resolves the two forms of a listener's "upstream" key:
// upstream = "host:port", or a [listener.upstream] table holding the
// [upstream] keys plus address (the target) and server_name. The contract
// in MISSION.md shows both in one listener, which TOML rejects ("Key
// 'listener.upstream' has already been defined"), so the table form takes
// the target in its address key.
func (l *fileListener) decodeUpstream(md *toml.MetaData) error {
	if !l.hasUpstream() {
		return nil
	}
	var addr string
	if err := md.PrimitiveDecode(l.Upstream, &addr); err == nil {
		l.UpstreamAddr = &addr
		return nil
	}
	if err := md.PrimitiveDecode(l.Upstream, &l.UpstreamSettings); err != nil {
		return fmt.Errorf("want a \"host:port\" string or a table of [upstream] keys plus address and server_name (%w)", err)
	}
	return nil
}

// hasUpstream reports whether the listener set "upstream": the decoder
// leaves the Primitive zero when the key is absent.
func (l *fileListener) hasUpstream() bool {
	return !reflect.ValueOf(l.Upstream).IsZero()
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
		if strings.Contains(pe.Message, "'listener.upstream' has already been defined") {
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

// displayPath is the file name used in messages that are not KeyErrors.
func displayPath(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// baseDir is the directory relative config paths are resolved against.
func baseDir(path string) string {
	if path == "" {
		return "."
	}
	return filepath.Dir(path)
}
