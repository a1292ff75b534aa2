package policy

import (
	"strings"
	"testing"
)

// Every "write it as a ...: FIX" hint, applied to the file, loads.
func TestTypeHintFixLoads(t *testing.T) {
	n := 0
	for _, tt := range errorTests {
		if !strings.HasPrefix(tt.name, "type/") {
			continue
		}
		n++
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config), "config.toml")
			if err == nil {
				t.Fatal("Parse succeeded, want a type error")
			}
			msg := err.Error()
			// "...: RAW is a number; write it as a string: FIX"
			_, after, _ := strings.Cut(msg, "; write it as a ")
			_, fix, ok := strings.Cut(after, ": ")
			before, _, _ := strings.Cut(msg, " is a ")
			raw := before[strings.LastIndex(before, ": ")+2:]
			if !ok || raw == "" {
				t.Fatalf("error %q has no \"RAW is a ...; write it as a ...: FIX\"", msg)
			}
			fixed := strings.Replace(tt.config, "= "+raw, "= "+fix, 1)
			if fixed == tt.config {
				t.Fatalf("%q is not in the config", "= "+raw)
			}
			if _, err := Parse([]byte(fixed), "config.toml"); err != nil {
				t.Errorf("the config with %s instead of %s does not load:\n%s\n%v", fix, raw, fixed, err)
			}
		})
	}
	if n == 0 {
		t.Fatal("no type/ cases in errorTests")
	}
}
