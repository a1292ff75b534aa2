#!/usr/bin/env python3
"""The application server behind nginx in the http-intermediary example
(python3 standard library only).

usage: backend.py PORT

  GET  /ws       a WebSocket echo (RFC 6455): answers the upgrade with 101 and
                 Sec-WebSocket-Accept = base64(sha1(key + GUID)), then echoes
                 every text or binary frame back, unmasked, until a close.
  POST /upload   (and any POST or PUT) reads the body, Content-Length or
  POST /body/... chunked, and answers {"bytes": N, "sha256": "..."}.
"""
import base64
import hashlib
import http.server
import json
import socketserver
import struct
import sys

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 30


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT

    def log_message(self, fmt, *args):  # one line per request on stderr
        sys.stderr.write("backend: " + (fmt % args) + "\n")

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self):
        if self.path != "/ws":
            self.reply(404, b"not found\n", "text/plain")
            return
        key = self.headers.get("Sec-WebSocket-Key", "")
        if "websocket" not in self.headers.get("Upgrade", "").lower() or not key:
            self.reply(400, b"want a WebSocket upgrade\n", "text/plain")
            return
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.wfile.write(
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        self.wfile.flush()
        self.log_message('"%s" 101', self.requestline)
        self.close_connection = True
        while True:
            frame = read_frame(self.rfile)
            if frame is None:
                return
            opcode, payload = frame
            if opcode in (1, 2):
                self.wfile.write(make_frame(opcode, payload))
                self.wfile.flush()
            elif opcode == 9:  # ping
                self.wfile.write(make_frame(10, payload))
                self.wfile.flush()
            elif opcode == 8:  # close: answer it and stop
                self.wfile.write(make_frame(8, payload[:2]))
                self.wfile.flush()
                return

    def do_POST(self):
        h = hashlib.sha256()
        n = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 20))
                    if not b:
                        raise ConnectionError("body cut short")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline(8)  # the CRLF after the chunk
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 1 << 20))
                if not b:
                    raise ConnectionError("body cut short")
                h.update(b)
                n += len(b)
                left -= len(b)
        self.reply(200, json.dumps({"bytes": n, "sha256": h.hexdigest()}).encode() + b"\n")

    do_PUT = do_POST


def read_exact(f, n):
    b = f.read(n)
    return b if b is not None and len(b) == n else None


def read_frame(f):
    """One client frame: (opcode, unmasked payload), or None at EOF."""
    hdr = read_exact(f, 2)
    if hdr is None:
        return None
    opcode, length = hdr[0] & 0x0F, hdr[1] & 0x7F
    masked = hdr[1] & 0x80
    if length == 126:
        ext = read_exact(f, 2)
        if ext is None:
            return None
        length = struct.unpack("!H", ext)[0]
    elif length == 127:
        ext = read_exact(f, 8)
        if ext is None:
            return None
        length = struct.unpack("!Q", ext)[0]
    mask = read_exact(f, 4) if masked else b"\0\0\0\0"
    payload = read_exact(f, length) if length else b""
    if mask is None or payload is None:
        return None
    return opcode, bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def make_frame(opcode, payload):
    """A final, unmasked server frame."""
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        hdr = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return hdr + payload


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port = int(sys.argv[1])
    srv = Server(("127.0.0.1", port), Handler)
    sys.stderr.write(f"backend: listening on 127.0.0.1:{port}\n")
    srv.serve_forever()


if __name__ == "__main__":
    main()
