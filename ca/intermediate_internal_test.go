package ca

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIntermediateName(t *testing.T) {
	long := "tlsbridge CA ip-172-31-22-33.eu-west-1.compute.internal 1a2b3c4d" // 66 bytes
	tests := []struct {
		rootCN string
		want   string
	}{
		{"tlsbridge CA host 1a2b3c4d", "tlsbridge CA host 1a2b3c4d leaf issuer"},
		{"", "tlsbridge CA leaf issuer"},
		{long, long[:ubCommonName-len(intermediateSuffix)] + intermediateSuffix},
		{strings.Repeat("é", 40), strings.Repeat("é", 26) + intermediateSuffix}, // 80 bytes: cut between characters
	}
	for _, tt := range tests {
		got := intermediateName(tt.rootCN)
		if got != tt.want {
			t.Errorf("intermediateName(%q) = %q, want %q", tt.rootCN, got, tt.want)
		}
		if len(got) > ubCommonName || !utf8.ValidString(got) {
			t.Errorf("intermediateName(%q) = %q: %d bytes, valid UTF-8 %v; want ≤ %d, valid", tt.rootCN, got, len(got), utf8.ValidString(got), ubCommonName)
		}
	}
}
