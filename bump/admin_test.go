package bump_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tlsbridge/tlsbridge/bump"
	"github.com/tlsbridge/tlsbridge/ca/catest"
)

func TestAdminHandler(t *testing.T) {
	a := catest.New(t)
	srv := httptest.NewServer(bump.NewAdminHandler(a, nil, nil))
	defer srv.Close()

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		check              func(t *testing.T, body []byte)
	}{
		{"pem", "GET", "/ca.pem", 200, "application/x-pem-file", func(t *testing.T, body []byte) {
			b, rest := pem.Decode(body)
			if b == nil || b.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("body is not one PEM certificate: %q", body)
			}
			if !bytes.Equal(b.Bytes, a.CertDER()) {
				t.Errorf("PEM certificate is not the CA")
			}
		}},
		{"der", "GET", "/ca.der", 200, "application/pkix-cert", func(t *testing.T, body []byte) {
			c, err := x509.ParseCertificate(body)
			if err != nil {
				t.Fatalf("body is not a DER certificate: %v", err)
			}
			if !c.Equal(a.Cert) {
				t.Errorf("DER certificate is not the CA")
			}
		}},
		{"head-pem", "HEAD", "/ca.pem", 200, "application/x-pem-file", func(t *testing.T, body []byte) {
			if len(body) != 0 {
				t.Errorf("HEAD body = %d bytes, want 0", len(body))
			}
		}},
		{"healthz", "GET", "/healthz", 200, "text/plain; charset=utf-8", func(t *testing.T, body []byte) {
			if string(body) != "ok\n" {
				t.Errorf("body = %q, want \"ok\\n\"", body)
			}
		}},
		{"readyz", "GET", "/readyz", 200, "text/plain; charset=utf-8", func(t *testing.T, body []byte) {
			if string(body) != "ready\n" {
				t.Errorf("body = %q, want \"ready\\n\"", body)
			}
		}},
		{"no-key", "GET", "/ca-key.pem", 404, "", nil},
		{"unknown", "GET", "/", 404, "", nil},
		{"post", "POST", "/ca.pem", 405, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: status = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.wantStatus)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("%s %s: Content-Type = %q, want %q", tt.method, tt.path, resp.Header.Get("Content-Type"), tt.wantType)
			}
			if bytes.Contains(body, []byte("PRIVATE KEY")) {
				t.Fatalf("%s %s: response contains a private key", tt.method, tt.path)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}
