// Package logfield names the structured log fields every tlsbridge package
// uses, so that access lines, warnings and lifecycle lines can be searched
// with one vocabulary (STYLE.md item 30).
package logfield

// Field keys, snake_case, shared by all packages.
const (
	ConnID         = "conn_id"
	ClientAddr     = "client_addr"
	Host           = "host"
	Port           = "port"
	Rule           = "rule"
	Action         = "action"
	SNI            = "sni"
	ClientTLS      = "client_tls"
	ClientCipher   = "client_cipher"
	ClientOffered  = "client_offered"
	UpstreamAddr   = "upstream_addr"
	UpstreamTLS    = "upstream_tls"
	UpstreamCipher = "upstream_cipher"
	UpstreamOffer  = "upstream_offered"
	ALPN           = "alpn"
	Method         = "method"
	Path           = "path"
	Status         = "status"
	BytesIn        = "bytes_in"
	BytesOut       = "bytes_out"
	DurationMS     = "duration_ms"
	Hint           = "hint"
	Listen         = "listen"
	CADir          = "ca_dir"
	Stage          = "stage"
	ClosedBy       = "closed_by"
	UpstreamReused = "upstream_reused"
	ClientResumed  = "client_resumed"
	ClientHello    = "client_hello" // "sslv2" for an SSLv2-format ClientHello
)
