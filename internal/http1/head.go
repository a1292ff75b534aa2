package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Field is one header field as received; both slices point into the Head's
// buffer and are valid until the Head reads its next message.
type Field struct {
	Name, Value []byte
}

// Head is one parsed request or response head with its framing. A Head is
// reused message after message: reading the next one overwrites it, and in
// the steady state reading allocates nothing.
type Head struct {
	// Request line (requests only).
	Method, Target []byte
	// Status line (responses only); Reason may be empty.
	Status int
	Reason []byte
	// Minor is the minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
	Minor int
	// Fields are the header fields in the order received.
	Fields []Field

	// ContentLength is the body length from Content-Length, or -1 when the
	// message has none (RFC 9112 6.3).
	ContentLength int64
	// Chunked reports Transfer-Encoding ending in chunked (the only coding
	// list accepted; see checkFraming).
	Chunked bool
	// Close reports that the sender ends the connection after this message:
	// "close" in Connection, or HTTP/1.0 without "keep-alive".
	Close bool
	// Upgrade reports "upgrade" in Connection with an Upgrade field: the
	// sender asks to (or, in a 101, does) switch protocols.
	Upgrade bool
	// Expect100 reports "Expect: 100-continue" in a request.
	Expect100 bool
	// Hosts counts Host fields (a request must have exactly one, RFC 9112 3.2).
	Hosts int

	buf      []byte // the raw head, lines without their CRLF
	response bool
	teFields int // Transfer-Encoding fields seen
}

// Limits bound a head. Zero values mean 64 KiB and 256 fields.
type Limits struct {
	MaxBytes  int
	MaxFields int
}

func (l Limits) maxBytes() int {
	if l.MaxBytes > 0 {
		return l.MaxBytes
	}
	return 64 << 10
}

func (l Limits) maxFields() int {
	if l.MaxFields > 0 {
		return l.MaxFields
	}
	return 256
}

// maxLeadingCRLF is how many empty lines may precede a request line: some
// old clients send a CRLF after a POST body, and RFC 9112 2.2 asks servers
// to ignore at least one.
const maxLeadingCRLF = 4

// ReadRequest reads and checks one request head from br. io.EOF means the
// app closed cleanly before sending a byte of a new request; a *Error means
// the request is malformed or ambiguous and must be answered 400 (501 for
// an unknown transfer coding) with the connection closed.
func (h *Head) ReadRequest(br *bufio.Reader, lim Limits) error {
	h.reset(false)
	if err := h.readLines(br, lim); err != nil {
		return err
	}
	return h.parse(lim)
}

// ReadResponse reads and checks one response head from br. The caller
// decides the body with BodyFor, which needs the request method.
func (h *Head) ReadResponse(br *bufio.Reader, lim Limits) error {
	h.reset(true)
	if err := h.readLines(br, lim); err != nil {
		return err
	}
	return h.parse(lim)
}

func (h *Head) reset(response bool) {
	*h = Head{buf: h.buf[:0], Fields: h.Fields[:0], response: response, ContentLength: -1}
}

// readLines gathers the head into h.buf, each line without its CRLF and
// followed by a single '\n' as separator (never part of any line: a bare LF
// or CR inside a line is rejected here, the one place lines are split).
func (h *Head) readLines(br *bufio.Reader, lim Limits) error {
	max := lim.maxBytes()
	total := 0
	leading := 0
	for {
		start := len(h.buf)
		for {
			frag, err := br.ReadSlice('\n')
			total += len(frag)
			if total > max {
				return errorf(h.tooLargeStatus(), "head larger than %d bytes", max)
			}
			h.buf = append(h.buf, frag...)
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				if total == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line := h.buf[start:]
		// Every line ends in CRLF; a bare LF ends nothing (the ambiguity
		// behind request smuggling: nginx ends a line there, others do not).
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errorf(h.badStatus(), "line ends in a bare LF")
		}
		line = line[:len(line)-2]
		if i := bytes.IndexByte(line, '\r'); i >= 0 {
			return errorf(h.badStatus(), "bare CR inside a line")
		}
		if len(line) == 0 {
			if start == 0 && !h.response && leading < maxLeadingCRLF {
				leading++
				h.buf = h.buf[:0]
				continue
			}
			if start == 0 {
				return errorf(h.badStatus(), "empty first line")
			}
			h.buf = h.buf[:start]
			return nil
		}
		h.buf = append(h.buf[:start], line...)
		h.buf = append(h.buf, '\n')
	}
}

// parse splits h.buf into the start line and fields and derives framing.
func (h *Head) parse(lim Limits) error {
	first, rest, _ := bytes.Cut(h.buf, []byte{'\n'})
	var err error
	if h.response {
		err = h.parseStatusLine(first)
	} else {
		err = h.parseRequestLine(first)
	}
	if err != nil {
		return err
	}
	var connection [][]byte // the values of Connection fields, checked after
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(h.Fields) >= lim.maxFields() {
			return errorf(h.tooLargeStatus(), "more than %d header fields", lim.maxFields())
		}
		f, err := parseField(line)
		if err != nil {
			err.Status = h.badStatus()
			return err
		}
		h.Fields = append(h.Fields, f)
		if err := h.noteField(f, &connection); err != nil {
			return err
		}
	}
	for _, v := range connection {
		h.noteConnection(v)
	}
	return h.checkFraming()
}

// parseRequestLine: method SP request-target SP HTTP-version, single spaces
// (RFC 9112 3).
func (h *Head) parseRequestLine(line []byte) error {
	m, rest, ok1 := bytes.Cut(line, []byte{' '})
	t, v, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 {
		return errorf(StatusBadRequest, "request line is not method SP target SP version")
	}
	if !isToken(m) {
		return errorf(StatusBadRequest, "method is not a token")
	}
	if len(t) == 0 || !isTarget(t) {
		return errorf(StatusBadRequest, "request target is empty or has spaces, controls or non-ASCII bytes")
	}
	if !targetForm(m, t) {
		if string(m) == "CONNECT" {
			return errorf(StatusBadRequest, "CONNECT target %q is not host:port", clip(t))
		}
		return errorf(StatusBadRequest, "request target %q is not origin-form (/path), absolute-form (http://...) or * for OPTIONS", clip(t))
	}
	minor, ok := version(v)
	if !ok {
		if len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
			return errorf(StatusVersionNotSupported, "version %q is not HTTP/1.0 or HTTP/1.1", clip(v))
		}
		return errorf(StatusBadRequest, "version %q is not HTTP/1.0 or HTTP/1.1", clip(v))
	}
	h.Method, h.Target, h.Minor = m, t, minor
	return nil
}

// parseStatusLine: HTTP-version SP 3DIGIT SP [reason]. A missing SP after
// the code is accepted (it decides no framing).
func (h *Head) parseStatusLine(line []byte) error {
	v, rest, ok := bytes.Cut(line, []byte{' '})
	minor, vok := version(v)
	if !ok || !vok {
		return errorf(StatusBadGateway, "status line does not start with HTTP/1.0 or HTTP/1.1")
	}
	code, reason, sp := bytes.Cut(rest, []byte{' '})
	if len(code) != 3 || code[0] < '1' || code[0] > '9' || !isDigit(code[1]) || !isDigit(code[2]) {
		return errorf(StatusBadGateway, "status code is not three digits")
	}
	if !sp && len(reason) > 0 {
		return errorf(StatusBadGateway, "bad status line")
	}
	for _, c := range reason {
		if isCtl(c) && c != '\t' {
			return errorf(StatusBadGateway, "control character in the reason phrase")
		}
	}
	h.Minor = minor
	h.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	h.Reason = reason
	return nil
}

// parseField: token ":" OWS value OWS, no whitespace before the colon, no
// obs-fold, no control characters but HTAB in the value (RFC 9112 5).
func parseField(line []byte) (Field, *Error) {
	if line[0] == ' ' || line[0] == '\t' {
		return Field{}, errorf(StatusBadRequest, "obs-fold (a header line starting with whitespace)")
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return Field{}, errorf(StatusBadRequest, "header line without a colon")
	}
	if !isToken(name) {
		return Field{}, errorf(StatusBadRequest, "header name %q is not a token (whitespace before the colon?)", clip(name))
	}
	value = trimOWS(value)
	for _, c := range value {
		if isCtl(c) && c != '\t' {
			return Field{}, errorf(StatusBadRequest, "control character in header %q", clip(name))
		}
	}
	return Field{Name: name, Value: value}, nil
}

// noteField records what a field means for framing and hop-by-hop handling.
func (h *Head) noteField(f Field, connection *[][]byte) error {
	switch {
	case equalFold(f.Name, "content-length"):
		return h.noteLength(f.Value)
	case equalFold(f.Name, "transfer-encoding"):
		h.teFields++
		return h.noteTransferEncoding(f.Value)
	case equalFold(f.Name, "connection"):
		*connection = append(*connection, f.Value)
	case equalFold(f.Name, "host"):
		h.Hosts++
	case equalFold(f.Name, "expect"):
		if equalFold(f.Value, "100-continue") {
			h.Expect100 = true
		}
	}
	return nil
}

// noteLength accepts one Content-Length value or a list of identical ones
// (RFC 9112 6.3 item 5); anything else is ambiguous, an empty list element
// too ("00," — net/http refuses it; found by FuzzReadRequest).
func (h *Head) noteLength(v []byte) error {
	for item := range bytes.SplitSeq(v, []byte{','}) {
		item = trimOWS(item)
		n, ok := parseLength(item)
		if !ok {
			return errorf(h.badStatus(), "Content-Length %q is not a decimal number", clip(item))
		}
		if h.ContentLength >= 0 && n != h.ContentLength {
			return errorf(h.badStatus(), "Content-Length values differ")
		}
		h.ContentLength = n
	}
	if h.ContentLength < 0 {
		return errorf(h.badStatus(), "empty Content-Length")
	}
	return nil
}

// noteTransferEncoding accepts a coding list whose last coding is chunked
// and which names chunked once (RFC 9112 6.1, 7).
func (h *Head) noteTransferEncoding(v []byte) error {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte{','})
		item = trimOWS(item)
		if len(item) == 0 {
			continue
		}
		if h.Chunked {
			return errorf(h.badStatus(), "a transfer coding follows chunked")
		}
		if equalFold(item, "chunked") {
			h.Chunked = true
		} else if !isToken(item) {
			return errorf(h.badStatus(), "transfer coding %q is not a token", clip(item))
		}
	}
	return nil
}

// noteConnection reads the connection options that concern tlsbridge.
func (h *Head) noteConnection(v []byte) {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte{','})
		item = trimOWS(item)
		switch {
		case equalFold(item, "close"):
			h.Close = true
		case equalFold(item, "upgrade"):
			h.Upgrade = true
		}
	}
}

// checkFraming rejects what would let two parsers disagree on where the
// message ends (RFC 9112 6.1, 6.3, 11.2).
func (h *Head) checkFraming() error {
	if h.teFields > 0 {
		if h.ContentLength >= 0 {
			return errorf(h.badStatus(), "Content-Length together with Transfer-Encoding")
		}
		if !h.Chunked {
			return errorf(h.notChunkedStatus(), "Transfer-Encoding whose last coding is not chunked")
		}
		if h.Minor == 0 {
			return errorf(h.badStatus(), "Transfer-Encoding in an HTTP/1.0 message")
		}
	}
	if h.Upgrade && h.Get("upgrade") == nil {
		h.Upgrade = false
	}
	if h.Minor == 0 && !h.hasToken("connection", "keep-alive") {
		h.Close = true
	}
	if !h.response {
		switch {
		case h.Hosts > 1:
			return errorf(StatusBadRequest, "more than one Host field")
		case h.Hosts == 0 && h.Minor == 1 && string(h.Method) != "CONNECT":
			// CONNECT names its target in the request line; like Go's
			// net/http and squid, the proxy does not insist on Host.
			return errorf(StatusBadRequest, "HTTP/1.1 request without a Host field")
		}
	}
	return nil
}

func (h *Head) tooLargeStatus() int {
	if h.response {
		return StatusBadGateway
	}
	return StatusHeadTooLarge
}

func (h *Head) badStatus() int {
	if h.response {
		return StatusBadGateway
	}
	return StatusBadRequest
}

// notChunkedStatus: a request whose body length cannot be determined is
// answered 501 for an unknown coding (RFC 9112 6.1) — tlsbridge decodes none.
func (h *Head) notChunkedStatus() int {
	if h.response {
		return StatusBadGateway
	}
	return StatusNotImplemented
}

// Get returns the value of the first field named name (lower-case), or nil.
func (h *Head) Get(name string) []byte {
	for _, f := range h.Fields {
		if equalFold(f.Name, name) {
			return f.Value
		}
	}
	return nil
}

// hasToken reports whether any field named name lists token.
func (h *Head) hasToken(name, token string) bool {
	for _, f := range h.Fields {
		if !equalFold(f.Name, name) {
			continue
		}
		for v := f.Value; len(v) > 0; {
			var item []byte
			item, v, _ = bytes.Cut(v, []byte{','})
			if equalFold(trimOWS(item), token) {
				return true
			}
		}
	}
	return false
}

// IsMethod reports whether a request's method is m (methods are
// case-sensitive, RFC 9110 9.1).
func (h *Head) IsMethod(m string) bool { return string(h.Method) == m }

// Body is how a message's body is delimited.
type Body int

const (
	BodyNone   Body = iota // no body
	BodyLength             // ContentLength bytes
	BodyChunked
	BodyClose // until the sender closes (responses only)
)

// RequestBody is the framing of a request's body (RFC 9112 6.3): chunked,
// Content-Length, or none.
func (h *Head) RequestBody() Body {
	switch {
	case h.Chunked:
		return BodyChunked
	case h.ContentLength > 0:
		return BodyLength
	}
	return BodyNone
}

// ResponseBody is the framing of a response to a request with method
// (RFC 9112 6.3 items 1-3, 6-8).
func (h *Head) ResponseBody(method []byte) Body {
	switch {
	case string(method) == "HEAD", h.Status < 200, h.Status == 204, h.Status == 304:
		return BodyNone
	case h.Chunked:
		return BodyChunked
	case h.ContentLength == 0:
		return BodyNone
	case h.ContentLength > 0:
		return BodyLength
	}
	return BodyClose
}

func version(v []byte) (int, bool) {
	switch string(v) {
	case "HTTP/1.1":
		return 1, true
	case "HTTP/1.0":
		return 0, true
	}
	return 0, false
}

// parseLength parses a Content-Length value: 1 to 18 digits (RFC 9110 8.6).
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isCtl(c byte) bool { return c < 0x20 || c == 0x7f }

// isToken reports an RFC 9110 5.6.2 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

// isTarget accepts visible ASCII only: spaces, controls and raw non-ASCII
// bytes are never part of a request-target (RFC 3986, RFC 9112 3.2).
func isTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// targetForm accepts the request-target forms (RFC 9112 3.2): for CONNECT
// authority-form only (host:port, 3.2.3), which is what the proxy port
// reads; for every other method what an origin serves: origin-form,
// absolute-form with an http or https URI, and "*" for OPTIONS.
func targetForm(method, t []byte) bool {
	if string(method) == "CONNECT" {
		return isAuthority(t)
	}
	switch {
	case t[0] == '/':
		return true
	case len(t) == 1 && t[0] == '*':
		return string(method) == "OPTIONS"
	case len(t) > 7 && equalFold(t[:7], "http://"), len(t) > 8 && equalFold(t[:8], "https://"):
		return true
	}
	return false
}

// isAuthority reports host:port with a non-empty host and a decimal port:
// no path, no userinfo, no scheme.
func isAuthority(t []byte) bool {
	i := bytes.LastIndexByte(t, ':')
	if i <= 0 || i == len(t)-1 || bytes.ContainsAny(t, "/@?#") {
		return false
	}
	for _, c := range t[i+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// clip bounds what an error message quotes from the input.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
