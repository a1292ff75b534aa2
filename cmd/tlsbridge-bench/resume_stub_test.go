//go:build !(openssl && cgo)

package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRunResumeIDNeedsOpenSSL: the default build says how to get the mode.
func TestRunResumeIDNeedsOpenSSL(t *testing.T) {
	proxy, caFile := legacyOrigin(t, http.NotFoundHandler())
	err := run(context.Background(), []string{"-proxy", proxy, "-target", "example.com:443", "-cacert", caFile, "-suites", "rsa", "-resume", "id"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-tags openssl") {
		t.Fatalf("run = %v, want an error naming -tags openssl", err)
	}
}
