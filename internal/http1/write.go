package http1

import "strconv"

// Hop-by-hop fields (RFC 9110 7.6.1) are for one connection only: they are
// never forwarded, nor are the fields a Connection field names.
func isHopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 19:
		return equalFold(name, "proxy-authorization")
	case 18:
		return equalFold(name, "proxy-authenticate")
	}
	return false
}

// listed reports whether a Connection field names name.
func (h *Head) listed(name []byte) bool {
	for _, f := range h.Fields {
		if !equalFold(f.Name, "connection") {
			continue
		}
		for v := f.Value; len(v) > 0; {
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			if item := trimOWS(v[:i]); len(item) == len(name) && equalFoldBytes(item, name) {
				return true
			}
			if i == len(v) {
				break
			}
			v = v[i+1:]
		}
	}
	return false
}

func equalFoldBytes(a, b []byte) bool {
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// appendFields appends the end-to-end fields: no hop-by-hop field, no field
// named by Connection, one normalised Content-Length, and Transfer-Encoding
// only when keepTE. Upgrade is kept when upgrade is set.
func (h *Head) appendFields(dst []byte, keepTE, upgrade bool) []byte {
	for _, f := range h.Fields {
		switch {
		case upgrade && equalFold(f.Name, "upgrade"):
		case isHopByHop(f.Name), equalFold(f.Name, "content-length"), h.listed(f.Name):
			continue
		case equalFold(f.Name, "transfer-encoding") && !keepTE:
			continue
		}
		dst = append(dst, f.Name...)
		dst = append(dst, ':', ' ')
		dst = append(dst, f.Value...)
		dst = append(dst, '\r', '\n')
	}
	if h.ContentLength >= 0 {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, h.ContentLength, 10)
		dst = append(dst, '\r', '\n')
	}
	if upgrade {
		dst = append(dst, "Connection: upgrade\r\n"...)
	}
	return dst
}

// AppendRequest appends the request head as tlsbridge sends it upstream:
// HTTP/1.1, CRLF line ends, end-to-end fields only (see appendFields), the
// Upgrade field and "Connection: upgrade" when the app asked to upgrade, and
// a Host field set to host when the app (HTTP/1.0) sent none.
func (h *Head) AppendRequest(dst []byte, host string) []byte {
	dst = append(dst, h.Method...)
	dst = append(dst, ' ')
	dst = append(dst, h.Target...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	if h.Hosts == 0 {
		dst = append(dst, "Host: "...)
		dst = append(dst, host...)
		dst = append(dst, '\r', '\n')
	}
	dst = h.appendFields(dst, true, h.Upgrade)
	return append(dst, '\r', '\n')
}

// AppendResponse appends the response head as tlsbridge sends it to the
// app: HTTP/1.1, end-to-end fields only, "Connection: close" when close,
// without Transfer-Encoding when dechunk (an HTTP/1.0 app gets the data
// close-delimited), and with Upgrade and "Connection: upgrade" for a 101.
func (h *Head) AppendResponse(dst []byte, close, dechunk bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(h.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, h.Reason...)
	dst = append(dst, '\r', '\n')
	dst = h.appendFields(dst, !dechunk, h.Status == 101)
	if close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, '\r', '\n')
}
