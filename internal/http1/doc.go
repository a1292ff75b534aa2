// Package http1 is tlsbridge's one HTTP/1.1 parser: request and response
// heads, their framing (Content-Length, chunked, close-delimited) and the
// chunked body coding, for the bumped-HTTP intermediary in bump.
//
// It is strict where RFC 9112 lets parsers differ, because a proxy that
// accepts what the origin reads differently is how request smuggling works
// (RFC 9112 11.2): every line ends in CRLF (a bare LF or CR is an error),
// obs-fold, whitespace before a colon, control characters, Content-Length
// with Transfer-Encoding, differing Content-Length values, a coding list
// that does not end in chunked, malformed chunk sizes or extensions, and
// heads over a bound are all rejected with the status to answer. What it
// accepts, the caller re-serialises (AppendRequest, AppendResponse,
// CopyChunked), so the origin only ever sees messages written here.
//
// A Head is reused across the messages of a connection; reading one
// allocates nothing once its buffers have grown.
package http1
