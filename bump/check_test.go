package bump

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/tlsbridge/tlsbridge/policy"
)

func TestCheck(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS12)
	for _, tt := range []struct {
		name     string
		config   string
		wantOK   bool
		wantText []string
	}{
		{"tls12-origin-trusted", pinConfig(o, "origin.test", "bump", ""), true,
			[]string{"TLS 1.0 no   TLS 1.1 no   TLS 1.2 yes   TLS 1.3 no", "verify      ok", "would be bumped and succeed: upstream TLS 1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}},
		{"rule-requires-tls13", pinConfig(o, "origin.test", "bump", `min_tls = "1.3"`), false,
			[]string{"TLS 1.2 yes", "would get 502", "min_tls"}},
		{"origin-ca-missing", fmt.Sprintf("[[rule]]\nhosts = [\"origin.test\"]\n[rule.upstream]\naddress = %q\n", o.addr), false,
			[]string{"verify      FAILED", "unknown authority", "ca_files", "issuer  CN="}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := policy.Parse([]byte(tt.config), "")
			if err != nil {
				t.Fatal(err)
			}
			r := Check(context.Background(), pol, "origin.test", 443, nil)
			var b strings.Builder
			r.WriteTo(&b)
			if r.LegacyOK() != tt.wantOK {
				t.Errorf("LegacyOK() = %v, want %v (err %v)", r.LegacyOK(), tt.wantOK, r.Err)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(b.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}
