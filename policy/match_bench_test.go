package policy

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkMatch(b *testing.B) {
	var sb strings.Builder
	// 50 rules in front of the interesting ones: a realistic large config.
	for i := range 50 {
		fmt.Fprintf(&sb, "[[rule]]\nhosts = [\"host%d.example.net\", \"*.zone%d.example.net\"]\naction = \"tunnel\"\n", i, i)
	}
	p := mustParse(b, sb.String()+strings.Replace(matchConfig, "connect_ports = [443, 8443]\n", "", 1))
	cases := []struct {
		name string
		host string
	}{
		{"exact", "api.example.com"},
		{"wildcard", "a.b.example.com"},
		{"ip", "10.1.2.3"},
		{"default", "nothing.test"},
		{"unnormalized", "API.Example.COM."},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Match(c.host, 443)
			}
		})
	}
}
