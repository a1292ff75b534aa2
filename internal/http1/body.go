package http1

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// Flusher is where bodies are copied to: a buffered writer, flushed whenever
// the source has nothing more buffered (so a slow or streaming body reaches
// the other side as it comes instead of when a buffer fills).
type Flusher interface {
	io.Writer
	Flush() error
}

// ReadError wraps a failure to read the message being copied, as opposed to
// a failure to write it on (which is returned as is): the side that failed
// decides who gets the blame and the status.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read body: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// maxChunkLine bounds a chunk-size line with its extensions, and a trailer.
const maxChunkLine = 4 << 10

// CopyLength copies exactly n body bytes from src to dst.
func CopyLength(dst Flusher, src *bufio.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		b, err := more(dst, src)
		if errors.Is(err, io.EOF) {
			err = &ReadError{io.ErrUnexpectedEOF}
		}
		if err != nil {
			return done, err
		}
		if rest := n - done; int64(len(b)) > rest {
			b = b[:rest]
		}
		w, err := dst.Write(b)
		done += int64(w)
		src.Discard(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CopyUntilEOF copies a close-delimited body: everything until src ends.
// An unclean end (a reset, a TLS record error) is a *ReadError: a body
// truncated by a failure must not look complete.
func CopyUntilEOF(dst Flusher, src *bufio.Reader) (int64, error) {
	var done int64
	for {
		b, err := more(dst, src)
		if errors.Is(err, io.EOF) {
			return done, nil
		}
		if err != nil {
			return done, err
		}
		w, err := dst.Write(b)
		done += int64(w)
		src.Discard(w)
		if err != nil {
			return done, err
		}
	}
}

// more returns the bytes src has buffered, reading when it has none; dst
// is flushed before src blocks.
func more(dst Flusher, src *bufio.Reader) ([]byte, error) {
	if src.Buffered() == 0 {
		if err := dst.Flush(); err != nil {
			return nil, err
		}
		if _, err := src.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, &ReadError{err}
		}
	}
	b, _ := src.Peek(src.Buffered())
	return b, nil
}

// CopyChunked copies a chunked body (RFC 9112 7.1) from src to dst,
// checking every chunk-size line and re-writing it without extensions;
// trailer fields are checked like header fields and passed on. With
// dechunk (an HTTP/1.0 recipient) only the data is written. It returns the
// data bytes copied. A malformed body is a *ReadError wrapping an *Error.
func CopyChunked(dst Flusher, src *bufio.Reader, dechunk bool) (int64, error) {
	var done int64
	var line []byte
	for {
		var err error
		line, err = readChunkLine(dst, src, line[:0])
		if err != nil {
			return done, err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return done, &ReadError{err}
		}
		if size == 0 {
			return done, copyTrailers(dst, src, line[:0], dechunk)
		}
		if !dechunk {
			var hdr [20]byte
			b := strconv.AppendInt(hdr[:0], size, 16)
			b = append(b, '\r', '\n')
			if _, err := dst.Write(b); err != nil {
				return done, err
			}
		}
		n, err := CopyLength(dst, src, size)
		done += n
		if err != nil {
			return done, err
		}
		line, err = readChunkLine(dst, src, line[:0])
		if err != nil {
			return done, err
		}
		if len(line) != 0 {
			return done, &ReadError{errorf(StatusBadRequest, "chunk data longer than its size")}
		}
		if !dechunk {
			if _, err := dst.Write([]byte("\r\n")); err != nil {
				return done, err
			}
		}
	}
}

// copyTrailers reads the trailer section after the last chunk and writes it
// on, with the last-chunk line, unless dechunk. Fields that would change the
// framing or the connection are dropped (RFC 9110 6.5.1).
func copyTrailers(dst Flusher, src *bufio.Reader, line []byte, dechunk bool) error {
	if !dechunk {
		if _, err := dst.Write([]byte("0\r\n")); err != nil {
			return err
		}
	}
	total := 0
	for {
		var err error
		line, err = readChunkLine(dst, src, line[:0])
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if total += len(line); total > maxChunkLine*4 {
			return &ReadError{errorf(StatusHeadTooLarge, "trailer section too large")}
		}
		f, ferr := parseField(line)
		if ferr != nil {
			return &ReadError{ferr}
		}
		if dechunk || isHopByHop(f.Name) || equalFold(f.Name, "content-length") || equalFold(f.Name, "transfer-encoding") || equalFold(f.Name, "host") {
			continue
		}
		if err := writeField(dst, f.Name, f.Value); err != nil {
			return err
		}
	}
	if dechunk {
		return nil
	}
	_, err := dst.Write([]byte("\r\n"))
	return err
}

func writeField(w io.Writer, name, value []byte) error {
	var buf [256]byte
	b := append(buf[:0], name...)
	b = append(b, ':', ' ')
	b = append(b, value...)
	b = append(b, '\r', '\n')
	_, err := w.Write(b)
	return err
}

// readChunkLine reads one CRLF-terminated line of at most maxChunkLine bytes
// into buf, without its CRLF.
func readChunkLine(dst Flusher, src *bufio.Reader, buf []byte) ([]byte, error) {
	if src.Buffered() == 0 {
		if err := dst.Flush(); err != nil {
			return buf, err
		}
	}
	for {
		frag, err := src.ReadSlice('\n')
		if len(buf)+len(frag) > maxChunkLine {
			return buf, &ReadError{errorf(StatusBadRequest, "chunk line longer than %d bytes", maxChunkLine)}
		}
		buf = append(buf, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, &ReadError{noEOF(err)}
		}
	}
	if len(buf) < 2 || buf[len(buf)-2] != '\r' {
		return buf, &ReadError{errorf(StatusBadRequest, "chunk line ends in a bare LF")}
	}
	buf = buf[:len(buf)-2]
	for _, c := range buf {
		if c == '\r' {
			return buf, &ReadError{errorf(StatusBadRequest, "bare CR in a chunk line")}
		}
	}
	return buf, nil
}

// noEOF turns an EOF inside a body into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkSize: 1*HEXDIG (at most 15, so the size fits an int64) then
// chunk extensions, each ";" name ["=" (token | quoted-string)] with
// optional whitespace around ";" and "=" (RFC 9112 7.1.1). Extensions are
// checked and dropped.
func parseChunkSize(line []byte) (int64, error) {
	i := 0
	var size int64
	for i < len(line) && isHex(line[i]) {
		if i == 15 {
			return 0, errorf(StatusBadRequest, "chunk size too large")
		}
		size = size<<4 | int64(unhex(line[i]))
		i++
	}
	if i == 0 {
		return 0, errorf(StatusBadRequest, "chunk size is not hexadecimal")
	}
	rest := line[i:]
	for {
		rest = trimOWSLeft(rest)
		if len(rest) == 0 {
			return size, nil
		}
		if rest[0] != ';' {
			return 0, errorf(StatusBadRequest, "bad character after the chunk size")
		}
		rest = trimOWSLeft(rest[1:])
		n := tokenLen(rest)
		if n == 0 {
			return 0, errorf(StatusBadRequest, "chunk extension without a name")
		}
		rest = trimOWSLeft(rest[n:])
		if len(rest) == 0 || rest[0] != '=' {
			continue
		}
		rest = trimOWSLeft(rest[1:])
		if len(rest) > 0 && rest[0] == '"' {
			n = quotedLen(rest)
		} else {
			n = tokenLen(rest)
		}
		if n == 0 {
			return 0, errorf(StatusBadRequest, "bad chunk extension value")
		}
		rest = rest[n:]
	}
}

func tokenLen(b []byte) int {
	n := 0
	for n < len(b) && tokenChar[b[n]] {
		n++
	}
	return n
}

// quotedLen is the length of the quoted-string at the start of b, or 0.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) || (isCtl(b[i]) && b[i] != '\t') {
				return 0
			}
		case isCtl(c) && c != '\t':
			return 0
		}
	}
	return 0
}

func trimOWSLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
