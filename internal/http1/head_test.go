package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func readReq(s string) (*Head, *bufio.Reader, error) {
	h := &Head{}
	br := bufio.NewReaderSize(strings.NewReader(s), 64)
	return h, br, h.ReadRequest(br, Limits{})
}

// rejectTests are requests an intermediary must not forward (RFC 9112 11.2):
// each would let tlsbridge and some origin disagree on where it ends.
var rejectTests = []struct {
	name, in string
	status   int
}{
	{"bare-lf-in-head", "GET / HTTP/1.1\r\nHost: a\r\nFoo: a\nContent-Length: 40\r\n\r\n", 400},
	{"lf-only-head", "GET / HTTP/1.1\nHost: a\n\n", 400},
	{"bare-cr-in-value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
	{"obs-fold-tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tContent-Length: 5\r\n\r\n", 400},
	{"cl-and-te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"te-and-cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
	{"two-cl-differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
	{"cl-list-differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400},
	{"cl-sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
	{"cl-hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400},
	{"cl-empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
	{"cl-huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
	{"te-gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	{"te-chunked-gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
	{"te-chunked-twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"te-xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501},
	{"te-quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400},
	{"te-in-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"space-before-colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400},
	{"tab-before-colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400},
	{"ctl-in-value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
	{"nul-in-value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
	{"no-colon", "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 400},
	{"empty-name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400},
	{"no-host", "GET / HTTP/1.1\r\n\r\n", 400},
	{"two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"http2-line", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
	{"http09", "GET /\r\n\r\n", 400},
	{"double-space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"space-in-target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"utf8-target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"lower-version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
	{"bad-method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"head-too-large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431},
	{"too-many-fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: a\r\n", 300) + "\r\n", 431},
}

func TestReadRequestRejects(t *testing.T) {
	for _, tt := range rejectTests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readReq(tt.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ReadRequest(%q) = %v, want an *Error", clip([]byte(tt.in)), err)
			}
			if e.Status != tt.status {
				t.Errorf("ReadRequest(%q) status = %d (%s), want %d", clip([]byte(tt.in)), e.Status, e.Reason, tt.status)
			}
		})
	}
}

var acceptTests = []struct {
	name, in string
	body     Body
	length   int64
	close    bool
	upgrade  bool
	want     string // AppendRequest with host "origin.test"
}{
	{"get", "GET /a?b HTTP/1.1\r\nHost: o\r\nAccept: */*\r\n\r\n", BodyNone, -1, false, false,
		"GET /a?b HTTP/1.1\r\nHost: o\r\nAccept: */*\r\n\r\n"},
	{"leading-crlf", "\r\nGET / HTTP/1.1\r\nHost: o\r\n\r\n", BodyNone, -1, false, false,
		"GET / HTTP/1.1\r\nHost: o\r\n\r\n"},
	{"post-length", "POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 005\r\n\r\n", BodyLength, 5, false, false,
		"POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 5\r\n\r\n"},
	{"cl-same-twice", "POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n", BodyLength, 3, false, false,
		"POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\n"},
	{"chunked", "POST / HTTP/1.1\r\nHost: o\r\ntransfer-encoding:  Chunked \r\n\r\n", BodyChunked, -1, false, false,
		"POST / HTTP/1.1\r\nHost: o\r\ntransfer-encoding: Chunked\r\n\r\n"},
	{"gzip-chunked", "POST / HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", BodyChunked, -1, false, false,
		"POST / HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
	{"close-hop-by-hop", "GET / HTTP/1.1\r\nHost: o\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Ok: 2\r\n\r\n", BodyNone, -1, true, false,
		"GET / HTTP/1.1\r\nHost: o\r\nX-Ok: 2\r\n\r\n"},
	{"upgrade", "GET /ws HTTP/1.1\r\nHost: o\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", BodyNone, -1, false, true,
		"GET /ws HTTP/1.1\r\nHost: o\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"},
	{"upgrade-without-field", "GET / HTTP/1.1\r\nHost: o\r\nConnection: upgrade\r\n\r\n", BodyNone, -1, false, false,
		"GET / HTTP/1.1\r\nHost: o\r\n\r\n"},
	{"http10-no-host", "GET / HTTP/1.0\r\n\r\n", BodyNone, -1, true, false,
		"GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n"},
	{"http10-keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: o\r\n\r\n", BodyNone, -1, false, false,
		"GET / HTTP/1.1\r\nHost: o\r\n\r\n"},
	{"obs-text", "GET / HTTP/1.1\r\nHost: o\r\nX: caf\xe9\t!\r\n\r\n", BodyNone, -1, false, false,
		"GET / HTTP/1.1\r\nHost: o\r\nX: caf\xe9\t!\r\n\r\n"},
	{"absolute-form", "GET http://o/x HTTP/1.1\r\nHost: o\r\n\r\n", BodyNone, -1, false, false,
		"GET http://o/x HTTP/1.1\r\nHost: o\r\n\r\n"},
}

func TestReadRequestAccepts(t *testing.T) {
	for _, tt := range acceptTests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := readReq(tt.in)
			if err != nil {
				t.Fatalf("ReadRequest(%q) = %v", tt.in, err)
			}
			if got := h.RequestBody(); got != tt.body {
				t.Errorf("RequestBody = %v, want %v", got, tt.body)
			}
			if h.ContentLength != tt.length || h.Close != tt.close || h.Upgrade != tt.upgrade {
				t.Errorf("ContentLength, Close, Upgrade = %d, %v, %v; want %d, %v, %v", h.ContentLength, h.Close, h.Upgrade, tt.length, tt.close, tt.upgrade)
			}
			if got := string(h.AppendRequest(nil, "origin.test")); got != tt.want {
				t.Errorf("AppendRequest =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestReadRequestEOF(t *testing.T) {
	if _, _, err := readReq(""); err != io.EOF {
		t.Errorf("ReadRequest(empty) = %v, want io.EOF", err)
	}
	if _, _, err := readReq("GET / HTTP/1.1\r\nHost"); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadRequest(truncated) = %v, want io.ErrUnexpectedEOF", err)
	}
}

var responseTests = []struct {
	name, method, in string
	body             Body
	err              bool
	want             string // AppendResponse(close=false, dechunk=false)
}{
	{"length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", BodyLength, false,
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"},
	{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", BodyNone, false,
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"},
	{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", BodyNone, false, "HTTP/1.1 204 No Content\r\n\r\n"},
	{"304", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", BodyNone, false, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"},
	{"100", "POST", "HTTP/1.1 100 Continue\r\n\r\n", BodyNone, false, "HTTP/1.1 100 Continue\r\n\r\n"},
	{"101", "GET", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", BodyNone, false,
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"},
	{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyChunked, false,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{"close-delimited", "GET", "HTTP/1.0 200 OK\r\n\r\n", BodyClose, false, "HTTP/1.1 200 OK\r\n\r\n"},
	{"no-reason", "GET", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", BodyNone, false, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"},
	{"cl-and-te", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 0, true, ""},
	{"two-cl", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 0, true, ""},
	{"bare-lf", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\n", 0, true, ""},
	{"http2", "GET", "HTTP/2 200\r\n\r\n", 0, true, ""},
	{"status-2-digits", "GET", "HTTP/1.1 20 OK\r\n\r\n", 0, true, ""},
}

func TestReadResponse(t *testing.T) {
	for _, tt := range responseTests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Head{}
			err := h.ReadResponse(bufio.NewReader(strings.NewReader(tt.in)), Limits{})
			if tt.err {
				var e *Error
				if !errors.As(err, &e) || e.Status != StatusBadGateway {
					t.Fatalf("ReadResponse(%q) = %v, want an *Error with status 502", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadResponse(%q) = %v", tt.in, err)
			}
			if got := h.ResponseBody([]byte(tt.method)); got != tt.body {
				t.Errorf("ResponseBody(%s) = %v, want %v", tt.method, got, tt.body)
			}
			if got := string(h.AppendResponse(nil, false, false)); got != tt.want {
				t.Errorf("AppendResponse =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestHeadReuseAllocs: a keep-alive connection's heads cost no allocations
// once the buffers have grown.
func TestHeadReuseAllocs(t *testing.T) {
	msg := "GET /index.html HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: legacy/1.0\r\nAccept: */*\r\n\r\n"
	r := strings.NewReader("")
	br := bufio.NewReader(r)
	h := &Head{}
	out := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(msg)
		br.Reset(r)
		if err := h.ReadRequest(br, Limits{}); err != nil {
			t.Fatal(err)
		}
		out = h.AppendRequest(out[:0], "x")
	})
	if allocs != 0 {
		t.Errorf("ReadRequest+AppendRequest: %v allocations per message, want 0", allocs)
	}
}

// stdRequest is what net/http makes of the same bytes: where tlsbridge
// accepts a request, net/http must accept it too and agree on its method,
// target and body (the differential check behind FuzzReadRequest).
func checkAgainstStd(t *testing.T, in []byte) {
	h := &Head{}
	br := bufio.NewReader(bytes.NewReader(in))
	err := h.ReadRequest(br, Limits{})
	if err != nil {
		return // rejecting is always safe
	}
	var body bytes.Buffer
	w := bufio.NewWriter(&body)
	var berr error
	switch h.RequestBody() {
	case BodyLength:
		_, berr = CopyLength(w, br, h.ContentLength)
	case BodyChunked:
		_, berr = CopyChunked(w, br, true)
	}
	w.Flush()
	if berr != nil {
		return // a malformed or truncated body is answered 400 too
	}
	// RFC 9112 2.2: empty lines before a request line are ignored, which
	// net/http's ReadRequest leaves to its caller.
	for bytes.HasPrefix(in, []byte("\r\n")) {
		in = in[2:]
	}
	req, serr := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if serr != nil {
		t.Fatalf("tlsbridge accepts %q, net/http rejects it: %v", in, serr)
	}
	if req.Method != string(h.Method) || req.RequestURI != string(h.Target) {
		t.Fatalf("%q: tlsbridge reads %s %s, net/http %s %s", in, h.Method, h.Target, req.Method, req.RequestURI)
	}
	std, rerr := io.ReadAll(req.Body)
	if rerr != nil {
		t.Fatalf("%q: tlsbridge reads a %d-byte body, net/http fails: %v", in, body.Len(), rerr)
	}
	if !bytes.Equal(std, body.Bytes()) {
		t.Fatalf("%q: tlsbridge reads body %q, net/http %q", in, body.Bytes(), std)
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, tt := range rejectTests {
		if len(tt.in) < 4096 {
			f.Add([]byte(tt.in))
		}
	}
	for _, tt := range acceptTests {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte("POST / HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAgainstStd(t, in)
	})
}

func TestDifferentialSeeds(t *testing.T) {
	for _, tt := range acceptTests {
		checkAgainstStd(t, []byte(tt.in))
	}
}

// CONNECT takes authority-form and nothing else; other methods never do.
func TestConnectTarget(t *testing.T) {
	for _, tt := range []struct {
		line string
		ok   bool
	}{
		{"CONNECT origin.test:443 HTTP/1.1", true},
		{"CONNECT [::1]:443 HTTP/1.1", true},
		{"CONNECT 127.0.0.1:8443 HTTP/1.1", true},
		{"CONNECT origin.test HTTP/1.1", false},
		{"CONNECT origin.test: HTTP/1.1", false},
		{"CONNECT /index.html HTTP/1.1", false},
		{"CONNECT http://origin.test:443/ HTTP/1.1", false},
		{"CONNECT user@origin.test:443 HTTP/1.1", false},
		{"CONNECT origin.test:44x HTTP/1.1", false},
		{"GET origin.test:443 HTTP/1.1", false},
	} {
		var h Head
		err := h.ReadRequest(bufio.NewReader(strings.NewReader(tt.line+"\r\nHost: origin.test\r\n\r\n")), Limits{})
		if (err == nil) != tt.ok {
			t.Errorf("ReadRequest(%q) = %v, want ok=%v", tt.line, err, tt.ok)
		}
	}
}
