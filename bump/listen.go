package bump

import (
	"context"
	"net"
)

// Listen opens a TCP listener for app-facing connections (the proxy port and
// [[listener]] ports). Accepted connections get no TCP keepalive: Go enables
// it by default, which costs four setsockopt calls per accepted connection,
// and on the loopback or LAN leg to an app a vanished peer is already caught
// by [limits] idle_timeout. squid (tcp_keepalive) and nginx (so_keepalive)
// leave it off on client connections too.
func Listen(ctx context.Context, address string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", address)
}
