package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The README's "full set of keys" loads, and lists every key the loader
// accepts, so it cannot fall behind fileConfig.
func TestREADMEListsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "The full set of keys")
	if ok {
		_, rest, ok = strings.Cut(rest, "```toml\n")
	}
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```toml block after \"The full set of keys\"")
	}
	if _, err := Parse([]byte(block), filepath.Join(t.TempDir(), "config.toml")); err != nil {
		t.Fatalf("README.md's full set of keys does not load:\n%v", err)
	}
	md, err := toml.Decode(block, &map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	listed := make(map[string]bool)
	for _, k := range md.Keys() {
		listed[k.String()] = true
	}
	var missing []string
	for _, k := range acceptedKeys(reflect.TypeFor[fileConfig](), "") {
		if !listed[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("README.md's full set of keys lacks %s", strings.Join(missing, ", "))
	}
}

// acceptedKeys lists the dotted keys (tables included) below struct t, read
// from the toml tags like validKeysAt; a listener's Primitive upstream is
// both a key and the [listener.upstream] table.
func acceptedKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			keys = append(keys, acceptedKeys(f.Type, prefix)...)
			continue
		}
		name := tagName(f)
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		ft := f.Type
		if ft == primitiveType {
			ft = reflect.TypeFor[fileUpstreamOverride]()
		}
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			keys = append(keys, acceptedKeys(ft, key+".")...)
		}
	}
	return slices.Compact(keys)
}

// The example configs users copy from (examples/*/config.toml, with their
// @..._PORT@ placeholders filled in) and docs/listeners.md's tlsbridge
// blocks load, so both spellings of a listener's upstream keep working.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*", "config.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/*/config.toml (%v)", err)
	}
	placeholder := regexp.MustCompile(`@[A-Z0-9_]+@`)
	configs := make(map[string]string)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		port := 20000
		configs[f] = placeholder.ReplaceAllStringFunc(string(data), func(string) string { port++; return strconv.Itoa(port) })
	}
	docs, err := os.ReadFile(filepath.Join("..", "docs", "listeners.md"))
	if err != nil {
		t.Fatal(err)
	}
	for i, block := range strings.Split(string(docs), "```toml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		configs[fmt.Sprintf("docs/listeners.md block %d", i)] = block
	}
	pemName := regexp.MustCompile(`"([A-Za-z0-9_.-]+\.pem)"`)
	clientCertName := regexp.MustCompile(`client_cert = "([A-Za-z0-9_.-]+)\.pem"`)
	authFileName := regexp.MustCompile(`proxy_auth_file = "([A-Za-z0-9_.-]+)"`)
	for name, config := range configs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// Every PEM file the config names, as a fresh CA certificate.
			for _, m := range pemName.FindAllStringSubmatch(config, -1) {
				writeCAPEM(t, dir, m[1])
			}
			if err := os.WriteFile(filepath.Join(dir, "users.htpasswd"), []byte("alice:"+aliceHash+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// client_cert/client_key pairs as a real certificate and key
			// (name.pem, name-key.pem), proxy_auth_file as credentials.
			for _, m := range clientCertName.FindAllStringSubmatch(config, -1) {
				writeClientPair(t, dir, m[1], 0o600)
			}
			for _, m := range authFileName.FindAllStringSubmatch(config, -1) {
				if err := os.WriteFile(filepath.Join(dir, m[1]), []byte("alice:pw\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Parse([]byte(config), filepath.Join(dir, "config.toml")); err != nil {
				t.Errorf("%s does not load:\n%v", name, err)
			}
		})
	}
}
