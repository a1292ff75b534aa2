package policy

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// typeHint rewrites the decoder's "incompatible types: TOML value has type
// float64; destination has type string" for key, whose value is written as
// raw in the file, into what to write instead:
//
//	1.2 is a number; write it as a string: "1.2"
//
// It reports false when it cannot spell the fix (a multi-line value, a
// table, a value that would not fit either), and the decoder's message
// stays.
func typeHint(msg, key, raw string) (string, bool) {
	types, ok := strings.CutPrefix(msg, "incompatible types: TOML value has type ")
	if !ok || raw == "" {
		return "", false
	}
	src, _, ok := strings.Cut(types, "; destination has type ")
	want := keyType(key)
	if !ok || want == nil {
		return "", false
	}
	fix, ok := respell(raw, want)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("%s is a %s; write it as a %s: %s", raw, tomlTypeName(src), goTypeName(want), fix), true
}

// keyType is the Go type the decoder fills for a dotted key without array
// indexes ("rule.upstream.min_tls"), pointers removed; nil if unknown.
func keyType(key string) reflect.Type {
	t := reflect.TypeFor[fileConfig]()
	for part := range strings.SplitSeq(key, ".") {
		f, ok := fieldByTag(t, part)
		if !ok {
			return nil
		}
		t = f
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// respell writes raw, a TOML value as written in the file, as a value of
// type want: 1.2 as "1.2", "false" as false, "443" as 443, "a.example"
// as ["a.example"].
func respell(raw string, want reflect.Type) (string, bool) {
	switch want.Kind() {
	case reflect.String:
		if strings.ContainsAny(raw[:1], "\"'[{") {
			return "", false
		}
		return strconv.Quote(raw), true
	case reflect.Bool:
		if s, err := strconv.Unquote(raw); err == nil && (s == "true" || s == "false") {
			return s, true
		}
	case reflect.Int:
		if s, err := strconv.Unquote(raw); err == nil {
			if _, err := strconv.Atoi(s); err == nil {
				return s, true
			}
		}
	case reflect.Slice:
		elem := want.Elem()
		if strings.HasPrefix(raw, "[") || (elem.Kind() != reflect.String && elem.Kind() != reflect.Int) {
			return "", false
		}
		if s, ok := respell(raw, elem); ok {
			return "[" + s + "]", true
		}
		return "[" + raw + "]", true
	}
	return "", false
}

// tomlTypeName names a decoder type ("float64", "int64", "bool", ...) the
// way the TOML spec does.
func tomlTypeName(t string) string {
	switch {
	case t == "float64" || t == "int64":
		return "number"
	case t == "bool":
		return "boolean"
	case t == "string":
		return "string"
	case strings.HasPrefix(t, "[]"):
		return "list"
	case strings.HasPrefix(t, "map"):
		return "table"
	}
	return "date"
}

func goTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int:
		return "number"
	case reflect.Slice:
		return "list"
	}
	return t.Kind().String()
}

// valueAt returns the value written on a line of data ("key = value  #
// comment" gives "value"), or "" when the line has none.
func valueAt(data []byte, line int) string {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	_, v, ok := strings.Cut(string(lines[line-1]), "=")
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	if v != "" && !strings.ContainsAny(v[:1], "\"'") {
		v, _, _ = strings.Cut(v, "#")
		v = strings.TrimSpace(v)
	}
	return v
}

// indexArrayKey adds the array index to a decoder key below [[rule]] or
// [[listener]] ("rule.upstream.min_tls" on line 9 becomes
// "rule[2].upstream.min_tls" after three [[rule]] headers): the decoder
// names the key without it. Arrays written inline keep the plain key.
func indexArrayKey(key string, data []byte, line int) string {
	name, rest, _ := strings.Cut(key, ".")
	if !isArrayTable(name) {
		return key
	}
	n := 0
	for i, l := range bytes.Split(data, []byte("\n")) {
		if i >= line {
			break
		}
		h := strings.TrimSpace(string(l))
		if inner, ok := strings.CutPrefix(h, "[["); ok {
			if inner, _, ok = strings.Cut(inner, "]]"); ok && strings.TrimSpace(inner) == name {
				n++
			}
		}
	}
	if n == 0 {
		return key
	}
	key = fmt.Sprintf("%s[%d]", name, n-1)
	if rest != "" {
		key += "." + rest
	}
	return key
}
