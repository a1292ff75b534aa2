//go:build !(openssl && cgo)

package bump

import (
	"context"
	"net"
	"time"
)

// legacyEngine is absent from this build: crypto/tls serves every app,
// and an SSLv2-format hello is refused with a hint (make build-openssl
// builds the engine; see engine.go).
type legacyEngine struct{}

func newLegacyEngine() (*legacyEngine, error) { return nil, nil }

func (*legacyEngine) suites() []uint16 { return nil }

func (*legacyEngine) setLifetime(time.Duration) {}

func (*legacyEngine) setCacheSize(int) {}

func (*legacyEngine) sessions() (held, evicted int) { return 0, 0 }

// LegacyEngine names the legacy TLS engine built in: none in this build.
func LegacyEngine() string { return "" }

func (*legacyEngine) handshake(context.Context, net.Conn, legacyConfig) (appTLS, appState, error) {
	panic("bump: no legacy engine in this build") // legacyTakes is never asked without one
}
