#!/usr/bin/env python3
"""A legacy app that speaks raw HTTP/1.x over TLS 1.0 through tlsbridge
(python3 standard library only), for the http-intermediary example.

usage: app.py --proxy-port PORT --ca TLSBRIDGE_CA.pem --host HOST COMMAND ...

Every app connection sends "CONNECT HOST:443 HTTP/1.1", reads the proxy's
200, then does a TLS 1.0 handshake (DEFAULT:@SECLEVEL=0) trusting only the
tlsbridge CA, and writes exactly the bytes a command says: nothing here is
normalised by an HTTP library. Each command prints what it observed as JSON
on stdout (run.sh judges it); every socket operation times out after 20 s.

commands:
  smuggle bare-lf|clean   the request-smuggling attack, then a victim
  framing CASE...         one ambiguous request per CASE, in parallel
  oneshots N PATH         N sequential connections, one request each
                          with Connection: close
  ws                      a WebSocket upgrade and one echoed text frame
  bodyless head|204|304   a body-less response, then a GET, one connection
  pipeline PATH...        the GETs written in one send, responses read
  http10 PATH             an HTTP/1.0 request without Host
  keepalive PATH...       sequential GETs on one connection
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time
import warnings

# ssl.TLSVersion.TLSv1 is deprecated: being a legacy app is the point.
warnings.filterwarnings("ignore", category=DeprecationWarning)

TIMEOUT = 20.0  # every socket operation
CLOSE_WAIT = 5.0  # how long "closed afterwards" waits for the proxy's close
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class App:
    """One app connection: CONNECT through the proxy, then TLS 1.0."""

    def __init__(self, opt):
        self.host = opt.host
        raw = socket.create_connection(("127.0.0.1", opt.proxy_port), timeout=TIMEOUT)
        try:
            raw.sendall(f"CONNECT {opt.host}:443 HTTP/1.1\r\nHost: {opt.host}:443\r\n\r\n".encode())
            reply = b""
            while not reply.endswith(b"\r\n\r\n"):
                b = raw.recv(1)  # byte by byte: leave the TLS handshake alone
                if not b or len(reply) > 8192:
                    raise ConnectionError(f"proxy closed or babbled after CONNECT: {reply[:200]!r}")
                reply += b
            if not reply.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                raise ConnectionError(f"CONNECT refused: {reply.splitlines()[0]!r}")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.load_verify_locations(opt.ca)
            self.sock = ctx.wrap_socket(raw, server_hostname=opt.host)
        except BaseException:
            raw.close()
            raise
        self.version = self.sock.version()
        self.buf = b""
        self.eof = None  # None while open; "closed" or "reset: ..." once ended

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        """Read more into buf; False once the proxy has closed."""
        if self.eof:
            return False
        try:
            b = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
            self.eof = f"reset: {e}"
            return False
        if not b:
            self.eof = "closed"
            return False
        self.buf += b
        return True

    def read_until(self, sep, limit=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > limit or not self._fill():
                return None
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_n(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"closed {n - len(self.buf)} bytes before the end of the body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_chunked(self):
        body = b""
        while True:
            line = self.read_until(b"\r\n", 4096)
            if line is None:
                raise ConnectionError("closed inside a chunked body")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.read_until(b"\r\n", 65536) not in (b"\r\n", None):
                    pass  # trailer fields
                return body
            body += self.read_n(size)
            self.read_n(2)

    def read_response(self, method="GET"):
        """The next response (1xx other than 101 skipped), or None when the
        proxy closed before a whole head."""
        while True:
            head = self.read_until(b"\r\n\r\n")
            if head is None:
                return None
            lines = head[:-4].split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            status = int(parts[1])
            if not (100 <= status < 200) or status == 101:
                break
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().decode("latin-1").lower()
            headers[k] = (headers[k] + ", " if k in headers else "") + v.strip().decode("latin-1")
        if method == "HEAD" or status in (101, 204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self.read_chunked()
        elif "content-length" in headers:
            body = self.read_n(int(headers["content-length"]))
        else:  # close-delimited
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        return {
            "version": parts[0].decode("latin-1"),
            "status": status,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }

    def wait_closed(self, seconds=CLOSE_WAIT):
        """"closed"/"reset: ..." if the proxy ends the connection within
        seconds, "open" if not, "extra bytes: ..." if it sends more."""
        if self.buf:
            return f"extra bytes: {self.buf[:80]!r}"
        if self.eof:
            return self.eof
        self.sock.settimeout(seconds)
        try:
            if self._fill():
                return f"extra bytes: {self.buf[:80]!r}"
            return self.eof
        except (socket.timeout, TimeoutError):
            return "open"
        finally:
            self.sock.settimeout(TIMEOUT)


def request(host, method, path, extra=b"", version=b"HTTP/1.1"):
    return b"%s %s %s\r\nHost: %s\r\n%s\r\n" % (method.encode(), path.encode(), version, host.encode(), extra)


def guard(fn):
    """Run fn(); an exception becomes {"error": ...} so a result is always printed."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - reported, judged by run.sh
        return {"error": f"{type(e).__name__}: {e}"}


# --- 1. request smuggling -------------------------------------------------

def cmd_smuggle(opt):
    h = opt.host.encode()
    # The attacker's second message: a request whose Content-Length covers
    # the start of a third request, "GET /evil.html" with an unterminated
    # header. A proxy that counts the first head as body-less while the
    # origin honours its LF-separated Content-Length sees the second message
    # shifted by that length, ends up on a "boundary" with the evil request
    # still pending upstream, and pools that connection for the next app.
    tail = b"GET /evil.html HTTP/1.1\r\nX-Ignore: "
    second = b"GET /t HTTP/1.1\r\nContent-Length: %d\r\nX: " % len(tail)
    shift = len(second)  # what the origin takes as the first request's body
    second += b"GET /index.html HTTP/1.1\r\nHost: " + h + b"\r\n\r\n" + tail
    if opt.variant == "bare-lf":
        first = b"GET /index.html HTTP/1.1\r\nHost: %s\r\nFoo: a\nContent-Length: %d\r\n\r\n" % (h, shift)
    else:
        first = b"GET /index.html HTTP/1.1\r\nHost: %s\r\n\r\n" % h
    out = {"variant": opt.variant, "first": first.decode("latin-1"), "second": second.decode("latin-1")}

    def attacker():
        res = {"responses": []}
        a = App(opt)
        try:
            a.send(first)
            r1 = guard(lambda: a.read_response())
            res["responses"].append(r1)
            if r1 is None or r1.get("status") == 400:
                res["closed_after_first"] = a.wait_closed()
            try:
                a.send(second)
                res["responses"].append(guard(lambda: a.read_response()))
            except OSError as e:
                res["second_send_error"] = str(e)
        finally:
            a.close()
        return res

    out["attacker"] = guard(attacker)
    time.sleep(0.3)  # the attacker's upstream connection is back in the pool

    def victim():
        v = App(opt)
        try:
            v.send(request(opt.host, "GET", "/victim.html"))
            return v.read_response()
        finally:
            v.close()

    out["victim"] = guard(victim)
    return out


# --- 2. ambiguous framings ------------------------------------------------

def framing_cases(host):
    h = host.encode()
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 8000) for i in range(9))  # 72 KiB
    return {
        "bare-lf": b"GET /echo/c-bare-lf HTTP/1.1\r\nHost: %s\nX-A: b\r\n\r\n" % h,
        "bare-cr": b"GET /echo/c-bare-cr HTTP/1.1\r\nHost: %s\r\nX-A: b\rc\r\n\r\n" % h,
        "obs-fold": b"GET /echo/c-obs-fold HTTP/1.1\r\nHost: %s\r\nX-A: b\r\n c\r\n\r\n" % h,
        "cl-and-te": b"POST /echo/c-cl-and-te HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % h,
        "two-cl": b"POST /echo/c-two-cl HTTP/1.1\r\nHost: %s\r\nContent-Length: 3\r\n"
                  b"Content-Length: 4\r\n\r\nabcd" % h,
        "te-gzip": b"POST /echo/c-te-gzip HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: gzip\r\n\r\n" % h,
        "chunk-zz": b"POST /body/c-chunk-zz HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"zz\r\nGET /echo/c-chunk-zz-smuggled HTTP/1.1\r\nHost: %s\r\n\r\n" % (h, h),
        "space-before-colon": b"POST /echo/c-space-before-colon HTTP/1.1\r\nHost: %s\r\n"
                              b"Content-Length : 5\r\n\r\nhello" % h,
        "ctl-in-value": b"GET /echo/c-ctl-in-value HTTP/1.1\r\nHost: %s\r\nX-A: b\x01c\r\n\r\n" % h,
        "head-over-64k": b"GET /echo/c-head-over-64k HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (h, pad),
    }


def one_framing(opt, name, data):
    res = {"case": name, "path": data.split(b" ", 2)[1].decode(), "bytes": len(data)}
    try:
        a = App(opt)
    except Exception as e:  # noqa: BLE001
        res["error"] = f"connect: {e}"
        return res
    try:
        try:
            a.send(data)
        except OSError as e:  # the proxy may refuse before reading it all
            res["send_error"] = str(e)
        r = guard(lambda: a.read_response())
        if r is None:
            res["status"] = 0
            res["closed"] = a.eof or "closed"
        elif "error" in r:
            res["error"] = r["error"]
            res["closed"] = a.eof or "open"
        else:
            res["status"], res["body"] = r["status"], r["body"][:300]
            res["closed"] = a.wait_closed()
    finally:
        a.close()
    return res


def cmd_framing(opt):
    cases = framing_cases(opt.host)
    results = {}

    def run(name):
        results[name] = one_framing(opt, name, cases[name])

    threads = [threading.Thread(target=run, args=(n,)) for n in opt.cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[n] for n in opt.cases]


# --- 3. Connection: close one-shots ---------------------------------------

def cmd_oneshots(opt):
    want = open(opt.body_file, encoding="utf-8").read()
    ok, failures, t0 = 0, [], time.monotonic()
    for i in range(opt.n):
        def one():
            a = App(opt)
            try:
                a.send(request(opt.host, "GET", f"{opt.path}?oneshot={i}", b"Connection: close\r\n"))
                return a.read_response()
            finally:
                a.close()
        r = guard(one)
        if r and r.get("status") == 200 and r.get("body") == want:
            ok += 1
        elif len(failures) < 5:
            failures.append({"i": i, "got": r})
    return {"n": opt.n, "ok": ok, "failures": failures, "seconds": round(time.monotonic() - t0, 2)}


# --- 4. WebSocket ---------------------------------------------------------

def cmd_ws(opt):
    key = base64.b64encode(os.urandom(16)).decode()
    want_accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    text = "hello over a bumped TLS 1.0 WebSocket"
    a = App(opt)
    try:
        a.send(request(opt.host, "GET", "/ws",
                       b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % key.encode()))
        r = a.read_response()
        if r is None:
            return {"error": "closed before the 101"}
        out = {"status": r["status"], "accept_ok": r["headers"].get("sec-websocket-accept") == want_accept,
               "sent": text}
        if r["status"] != 101:
            out["body"] = r["body"][:300]
            return out
        payload = text.encode()
        mask = os.urandom(4)
        a.send(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
        hdr = a.read_n(2)
        n = hdr[1] & 0x7F
        if n == 126:
            n = int.from_bytes(a.read_n(2), "big")
        out["echo_opcode"] = hdr[0] & 0x0F
        out["echo"] = a.read_n(n).decode("utf-8", "replace")
        mask = os.urandom(4)  # a close frame, status 1000
        a.send(bytes([0x88, 0x82]) + mask + bytes(c ^ mask[i] for i, c in enumerate(b"\x03\xe8")))
        return out
    finally:
        a.close()


# --- 6. body-less responses -----------------------------------------------

def cmd_bodyless(opt):
    a = App(opt)
    steps = []

    def do(method, path, extra=b""):
        a.send(request(opt.host, method, path, extra))
        r = a.read_response(method)
        steps.append({"request": f"{method} {path}", "status": r and r["status"], "body": r and r["body"][:200],
                      "etag": r and r["headers"].get("etag")})
        return r

    try:
        if opt.kind == "head":
            do("HEAD", "/one.html")
        elif opt.kind == "204":
            do("GET", "/no-content")
        else:
            r = do("GET", "/one.html")
            etag = (r and r["headers"].get("etag")) or ""
            do("GET", "/one.html", b"If-None-Match: %s\r\n" % etag.encode())
        do("GET", "/two.html")
    except Exception as e:  # noqa: BLE001
        steps.append({"error": f"{type(e).__name__}: {e}"})
    finally:
        a.close()
    return steps


# --- 7. pipelining, 8. HTTP/1.0, 9. keep-alive ----------------------------

def cmd_pipeline(opt):
    a = App(opt)
    out = []
    try:
        a.send(b"".join(request(opt.host, "GET", p) for p in opt.paths))
        for p in opt.paths:
            r = a.read_response()
            out.append({"path": p, "status": r and r["status"], "body": r and r["body"][:200]})
    except Exception as e:  # noqa: BLE001
        out.append({"error": f"{type(e).__name__}: {e}"})
    finally:
        a.close()
    return out


def cmd_http10(opt):
    a = App(opt)
    try:
        a.send(b"GET %s HTTP/1.0\r\n\r\n" % opt.path.encode())
        r = a.read_response()
        if r is None:
            return {"error": "closed without a response"}
        return {"version": r["version"], "status": r["status"], "body": r["body"][:200], "closed": a.wait_closed()}
    finally:
        a.close()


def cmd_keepalive(opt):
    a = App(opt)
    out = []
    try:
        for p in opt.paths:
            a.send(request(opt.host, "GET", p))
            r = a.read_response()
            out.append({"path": p, "status": r and r["status"], "body": r and r["body"][:200]})
    except Exception as e:  # noqa: BLE001
        out.append({"error": f"{type(e).__name__}: {e}"})
    finally:
        a.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--ca", required=True, help="the tlsbridge CA (tlsbridge ca export)")
    ap.add_argument("--host", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("smuggle")
    p.add_argument("variant", choices=["bare-lf", "clean"])
    p = sub.add_parser("framing")
    p.add_argument("cases", nargs="+", choices=sorted(framing_cases("h")))
    p = sub.add_parser("oneshots")
    p.add_argument("n", type=int)
    p.add_argument("path")
    p.add_argument("body_file", help="the file whose content every response must carry")
    sub.add_parser("ws")
    p = sub.add_parser("bodyless")
    p.add_argument("kind", choices=["head", "204", "304"])
    p = sub.add_parser("pipeline")
    p.add_argument("paths", nargs="+")
    p = sub.add_parser("http10")
    p.add_argument("path")
    p = sub.add_parser("keepalive")
    p.add_argument("paths", nargs="+")
    opt = ap.parse_args()
    fn = globals()["cmd_" + opt.cmd]
    res = guard(lambda: fn(opt))
    if isinstance(res, list) and opt.cmd == "framing":
        for r in res:
            print(json.dumps(r))
    else:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
