package policy

import (
	"crypto/tls"
	"errors"
	"testing"
)

func TestParseTLSVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    uint16
		wantErr bool
	}{
		{"1.0", tls.VersionTLS10, false},
		{"1.1", tls.VersionTLS11, false},
		{"1.2", tls.VersionTLS12, false},
		{"1.3", tls.VersionTLS13, false},
		{"1.4", 0, true},
		{"3.0", 0, true},
		{"TLS1.2", 0, true},
		{"", 0, true},
		{" 1.2", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTLSVersion(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseTLSVersion(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrTLSVersion) {
				t.Errorf("ParseTLSVersion(%q) error = %v, want it to wrap ErrTLSVersion", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseTLSVersion(%q) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
}

func TestTLSVersionName(t *testing.T) {
	tests := []struct {
		in   uint16
		want string
	}{
		{tls.VersionTLS10, "1.0"},
		{tls.VersionTLS11, "1.1"},
		{tls.VersionTLS12, "1.2"},
		{tls.VersionTLS13, "1.3"},
		{0x0300, "0x0300"},
		{0, "0x0000"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := TLSVersionName(tt.in); got != tt.want {
				t.Errorf("TLSVersionName(%#04x) = %q, want %q", tt.in, got, tt.want)
			}
			if v, err := ParseTLSVersion(tt.want); err == nil && v != tt.in {
				t.Errorf("ParseTLSVersion(TLSVersionName(%#04x)) = %#04x", tt.in, v)
			}
		})
	}
}
