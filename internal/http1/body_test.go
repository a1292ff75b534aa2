package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
)

var chunkedTests = []struct {
	name, in string
	data     string // "" with ok false: rejected
	ok       bool
	reenc    string // what tlsbridge writes on
}{
	{"simple", "5\r\nhello\r\n0\r\n\r\n", "hello", true, "5\r\nhello\r\n0\r\n\r\n"},
	{"two-chunks-upper-hex", "A\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n", "0123456789!", true, "a\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n"},
	{"extensions-dropped", "5;a=b;c=\"x y\"\r\nhello\r\n0;z\r\n\r\n", "hello", true, "5\r\nhello\r\n0\r\n\r\n"},
	{"trailers", "1\r\nx\r\n0\r\nX-Sum: 1\r\nConnection: close\r\n\r\n", "x", true, "1\r\nx\r\n0\r\nX-Sum: 1\r\n\r\n"},
	{"leading-zeros", "0005\r\nhello\r\n0\r\n\r\n", "hello", true, "5\r\nhello\r\n0\r\n\r\n"},
	{"bad-size", "zz\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"negative", "-5\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"size-0x", "0x5\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"bare-lf-size", "5\nhello\r\n0\r\n\r\n", "", false, ""},
	{"bare-lf-after-data", "5\r\nhello\n0\r\n\r\n", "", false, ""},
	{"data-longer", "3\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"overflow", "ffffffffffffffffff\r\nx\r\n", "", false, ""},
	{"bad-ext", "5;\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"ext-ctl", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"space-in-size", "5 5\r\nhello\r\n0\r\n\r\n", "", false, ""},
	{"trailer-obs-fold", "1\r\nx\r\n0\r\nX: a\r\n b\r\n\r\n", "", false, ""},
	{"truncated", "5\r\nhel", "", false, ""},
}

func TestCopyChunked(t *testing.T) {
	for _, tt := range chunkedTests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			n, err := CopyChunked(w, bufio.NewReaderSize(strings.NewReader(tt.in+"NEXT"), 16), false)
			w.Flush()
			if !tt.ok {
				var re *ReadError
				if !errors.As(err, &re) {
					t.Fatalf("CopyChunked(%q) = %v, want a *ReadError", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CopyChunked(%q) = %v", tt.in, err)
			}
			if out.String() != tt.reenc || n != int64(len(tt.data)) {
				t.Errorf("CopyChunked(%q) wrote %q (%d data bytes), want %q (%d)", tt.in, out.String(), n, tt.reenc, len(tt.data))
			}
		})
	}
}

// Bytes after the last chunk belong to the next message and stay unread.
func TestCopyChunkedStopsAtEnd(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("1\r\nx\r\n0\r\n\r\nGET /next"))
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if _, err := CopyChunked(w, br, true); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	rest, _ := io.ReadAll(br)
	if out.String() != "x" || string(rest) != "GET /next" {
		t.Errorf("dechunked %q, left %q; want \"x\", \"GET /next\"", out.String(), rest)
	}
}

// FuzzCopyChunked: what tlsbridge accepts, Go's chunked reader accepts with
// the same data, and what tlsbridge writes on decodes to that data again.
func FuzzCopyChunked(f *testing.F) {
	for _, tt := range chunkedTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var data, reenc bytes.Buffer
		w := bufio.NewWriter(&data)
		if _, err := CopyChunked(w, bufio.NewReader(bytes.NewReader(in)), true); err != nil {
			return
		}
		w.Flush()
		std, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatalf("tlsbridge accepts %q, Go's chunked reader fails: %v", in, err)
		}
		if !bytes.Equal(std, data.Bytes()) {
			t.Fatalf("%q: tlsbridge reads %q, Go %q", in, data.Bytes(), std)
		}
		w = bufio.NewWriter(&reenc)
		if _, err := CopyChunked(w, bufio.NewReader(bytes.NewReader(in)), false); err != nil {
			t.Fatalf("%q: accepted when dechunking, rejected when re-encoding: %v", in, err)
		}
		w.Flush()
		again, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(reenc.Bytes())))
		if err != nil || !bytes.Equal(again, std) {
			t.Fatalf("%q re-encoded as %q decodes to %q, %v; want %q", in, reenc.Bytes(), again, err, std)
		}
	})
}

// FuzzReadResponse: a response head tlsbridge accepts is accepted by
// net/http with the same status and body framing.
func FuzzReadResponse(f *testing.F) {
	for _, tt := range responseTests {
		f.Add([]byte(tt.in), tt.method == "HEAD")
	}
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		h := &Head{}
		br := bufio.NewReader(bytes.NewReader(in))
		if err := h.ReadResponse(br, Limits{}); err != nil {
			return
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		kind := h.ResponseBody([]byte(method))
		if h.Status < 200 || kind == BodyChunked || kind == BodyClose {
			return // net/http reads 1xx differently; chunked is FuzzCopyChunked's
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("tlsbridge accepts %q, net/http rejects it: %v", in, err)
		}
		if resp.StatusCode != h.Status {
			t.Fatalf("%q: status %d, net/http %d", in, h.Status, resp.StatusCode)
		}
		var want int64
		if kind == BodyLength {
			want = h.ContentLength
		}
		if resp.ContentLength != want && !(kind == BodyNone && resp.ContentLength == -1) && !(head || h.Status == 204 || h.Status == 304) {
			t.Fatalf("%q: body length %d, net/http %d", in, want, resp.ContentLength)
		}
	})
}
