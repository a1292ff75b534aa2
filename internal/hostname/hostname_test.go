package hostname

import "testing"

var normalizeTests = []struct {
	in, want string
	wantErr  bool
}{
	{"example.com", "example.com", false},
	{"API.Example.COM.", "api.example.com", false},
	{"api.example.com:443", "api.example.com", false},
	{"127.0.0.1", "127.0.0.1", false},
	{"127.0.0.1:8443", "127.0.0.1", false},
	{"[::1]:443", "::1", false},
	{"[::1]", "::1", false},
	{"::1", "::1", false},
	{"::ffff:10.0.0.1", "10.0.0.1", false},
	{"bücher.example", "xn--bcher-kva.example", false},
	{"xn--bcher-kva.example", "xn--bcher-kva.example", false},
	{"", "", true},
	{".", "", true},
	{"bad host", "", true},
	{"_svc.Internal", "_svc.internal", false},
	{"xn--", "", true},
	{"-a.example", "", true},
	{"a-.example", "", true},
	{"a-b.example", "a-b.example", false},
	{"000..", "", true},
	{"a..b.example", "", true},
	{".example.com", "", true},
}

func TestNormalize(t *testing.T) {
	for _, tt := range normalizeTests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Normalize(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzNormalize(f *testing.F) {
	for _, tt := range normalizeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Normalize(in)
		if err != nil {
			return
		}
		// Normalizing twice changes nothing.
		again, err := Normalize(got)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which does not normalize again: %v", in, got, err)
		}
		if again != got {
			t.Fatalf("Normalize(Normalize(%q)) = %q, want %q", in, again, got)
		}
	})
}
