package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// unknownKeys reports every key the decoder did not use, with array indexes
// filled in ("rule[1].upstrem"), the valid keys of its table and the
// nearest valid key as a hint. Keys below an unknown table are not reported
// again.
func unknownKeys(md *toml.MetaData, path string) []error {
	undecoded := make(map[string]bool)
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	if len(undecoded) == 0 {
		return nil
	}
	var (
		errs     []error
		reported []toml.Key
		idx      = newArrayIndexer()
	)
	for _, k := range md.Keys() {
		idx.see(k)
		if !undecoded[k.String()] || hasReportedPrefix(reported, k) {
			continue
		}
		reported = append(reported, k)
		msg := fmt.Sprintf("unknown key %q", idx.display(k))
		if valid := validKeysAt(k[:len(k)-1]); len(valid) > 0 {
			msg += " (valid keys: " + strings.Join(valid, ", ") + ")"
			if near := nearest(k[len(k)-1], valid); near != "" {
				msg += fmt.Sprintf("; did you mean %q?", near)
			}
		}
		errs = append(errs, &KeyError{File: path, Msg: msg, Err: ErrUnknownKey})
	}
	return errs
}

func hasReportedPrefix(reported []toml.Key, k toml.Key) bool {
	for _, r := range reported {
		if len(r) < len(k) && slices.Equal(r, k[:len(r)]) {
			return true
		}
	}
	return false
}

// arrayIndexer follows md.Keys() in file order and knows which element of
// an array of tables ([[rule]], [[listener]]) a key belongs to. The decoder
// lists the array's own key once per [[header]]; inline arrays
// (rule = [{...}, {...}]) list it once, so there a repeated child key also
// starts a new element.
type arrayIndexer struct {
	index map[string]int             // array name → current element
	seen  map[string]map[string]bool // array name → direct children seen in the element
}

func newArrayIndexer() *arrayIndexer {
	return &arrayIndexer{index: make(map[string]int), seen: make(map[string]map[string]bool)}
}

func (a *arrayIndexer) see(k toml.Key) {
	name := k[0]
	if !isArrayTable(name) {
		return
	}
	if len(k) == 1 {
		if _, ok := a.index[name]; ok {
			a.index[name]++
		} else {
			a.index[name] = 0
		}
		a.seen[name] = make(map[string]bool)
		return
	}
	if a.seen[name] == nil {
		a.seen[name] = make(map[string]bool)
	}
	if len(k) == 2 {
		if a.seen[name][k[1]] {
			a.index[name]++
			clear(a.seen[name])
		}
		a.seen[name][k[1]] = true
	}
}

// display prints k with the array index after an array-of-tables name.
func (a *arrayIndexer) display(k toml.Key) string {
	var b strings.Builder
	for i, part := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(toml.Key{part}.String())
		if i == 0 && isArrayTable(part) {
			b.WriteString("[" + strconv.Itoa(a.index[part]) + "]")
		}
	}
	return b.String()
}

func isArrayTable(name string) bool { return name == "rule" || name == "listener" }

// validKeysAt lists the keys the table at parent accepts, read from the
// toml tags of fileConfig so the list cannot drift from the decoder.
func validKeysAt(parent toml.Key) []string {
	t := reflect.TypeFor[fileConfig]()
	for _, part := range parent {
		f, ok := fieldByTag(t, part)
		if !ok {
			return nil
		}
		t = f
	}
	return tagsOf(t)
}

var primitiveType = reflect.TypeFor[toml.Primitive]()

// fieldByTag returns the table type below key name in struct t: slices
// (arrays of tables) and pointers are looked through, and a listener's
// Primitive upstream is its table form.
func fieldByTag(t reflect.Type, name string) (reflect.Type, bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			if ft, ok := fieldByTag(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tagName(f) != name {
			continue
		}
		if f.Type == primitiveType {
			return reflect.TypeFor[fileUpstreamOverride](), true
		}
		return f.Type, true
	}
	return nil, false
}

func tagsOf(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			keys = append(keys, tagsOf(f.Type)...)
			continue
		}
		if name := tagName(f); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// nearest returns the valid key closest to key by edit distance, or "" when
// none is close enough to be the likely intent.
func nearest(key string, valid []string) string {
	best, bestDist := "", -1
	for _, v := range valid {
		d := editDistance(strings.ToLower(key), v)
		if bestDist < 0 || d < bestDist {
			best, bestDist = v, d
		}
	}
	limit := max(2, len(key)/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
