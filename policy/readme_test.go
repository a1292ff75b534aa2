package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
