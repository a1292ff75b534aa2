#!/usr/bin/env python3
"""Hostile clients for examples/hostile (Python standard library only).

  probe.py flood PROXY_PORT SECONDS THREADS USER
      THREADS threads, each on its own keep-alive connection from 127.0.0.2,
      send CONNECTs with wrong passwords for USER for SECONDS; prints
      "requests=N rate=R/s statuses=407:N[,...] p50_ms=.. max_ms=.."

  probe.py hello PROXY_PORT HOST VERSION SUITE USER PASSWORD
      a testssl-style raw ClientHello: CONNECT HOST:443 with proxy
      credentials, then a ClientHello at VERSION (1.0, 1.1 or 1.2) offering
      only SUITE (hex, e.g. 000a), read without any TLS library, so it works
      when the local OpenSSL has no 3DES; prints "accepted <hex suite>" or
      "refused alert=<n>" or "closed".
"""
import base64
import os
import socket
import struct
import sys
import threading
import time


def read_response(f):
    """Status and body length of one HTTP response from a buffered file."""
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    status = int(line.split()[1])
    length = 0
    close = False
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
        if k.strip().lower() == "connection" and v.strip().lower() == "close":
            close = True
    if length:
        f.read(length)
    return status, close


def connect_request(host, user, password):
    cred = base64.b64encode(f"{user}:{password}".encode()).decode()
    return (f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n"
            f"Proxy-Authorization: Basic {cred}\r\n\r\n").encode()


def flood(port, seconds, threads, user):
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    statuses, times = {}, []

    def worker(n):
        s = f = None
        i = 0
        while time.monotonic() < deadline:
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                                 source_address=("127.0.0.2", 0))
                    f = s.makefile("rb")
                t0 = time.monotonic()
                s.sendall(connect_request("nginx.takap.dev:443", user, f"guess-{n}-{i}"))
                st, close = read_response(f)
                took = time.monotonic() - t0
                i += 1
                with lock:
                    statuses[st] = statuses.get(st, 0) + 1
                    times.append(took)
                if close or st == 200:
                    s.close()
                    s = None
            except OSError as e:
                with lock:
                    statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.01)
        if s is not None:
            s.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - t0
    times.sort()
    total = sum(v for v in statuses.values())
    p50 = times[len(times) // 2] * 1000 if times else 0
    mx = times[-1] * 1000 if times else 0
    st = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items(), key=str))
    print(f"requests={total} rate={total / took:.0f}/s statuses={st} p50_ms={p50:.1f} max_ms={mx:.1f}")


VERSIONS = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303}


def client_hello(host, version, suite):
    """A minimal ClientHello: one suite plus the renegotiation SCSV, SNI,
    supported_groups (P-256, X25519) and ec_point_formats so that ECDHE suites
    can be chosen (RFC 8422), and for TLS 1.2 signature_algorithms (RFC 5246
    7.4.1.4.1)."""
    sni = host.encode()
    exts = struct.pack("!HHHBH", 0x0000, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    exts += struct.pack("!HHHHH", 0x000a, 6, 4, 0x0017, 0x001d)
    exts += struct.pack("!HHBB", 0x000b, 2, 1, 0)
    if version >= 0x0303:
        algs = [0x0401, 0x0501, 0x0601, 0x0201, 0x0403, 0x0503]
        body = struct.pack("!H", 2 * len(algs)) + b"".join(struct.pack("!H", a) for a in algs)
        exts += struct.pack("!HH", 0x000d, len(body)) + body
    suites = struct.pack("!HH", suite, 0x00ff)
    hello = (struct.pack("!H", version) + os.urandom(32) + b"\x00" +
             struct.pack("!H", len(suites)) + suites + b"\x01\x00" +
             struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(hello))[1:] + hello
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise ConnectionError("closed")
        b += c
    return b


def hello(port, host, version, suite, user, password):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(connect_request(f"{host}:443", user, password))
    f = s.makefile("rb", buffering=0)
    # The CONNECT response, byte by byte: nothing of the TLS reply is read.
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        c = f.read(1)
        if not c:
            print("closed before the CONNECT response")
            return
        head += c
    status = int(head.split()[1])
    if status != 200:
        print(f"CONNECT answered {status}")
        return
    s.sendall(client_hello(host, VERSIONS[version], suite))
    try:
        rtype, _, length = struct.unpack("!BHH", read_exact(s, 5))
        rec = read_exact(s, length)
    except (OSError, ConnectionError):
        print("closed")
        return
    if rtype == 0x15:
        print(f"refused alert={rec[1]}")
    elif rtype == 0x16 and rec[0] == 0x02:
        sid_len = rec[4 + 2 + 32]
        off = 4 + 2 + 32 + 1 + sid_len
        ver = struct.unpack("!H", rec[4:6])[0]
        chosen = struct.unpack("!H", rec[off:off + 2])[0]
        print(f"accepted {chosen:04x} version={ver:04x}")
    else:
        print(f"unexpected record type {rtype}")
    s.close()


def main():
    if sys.argv[1] == "flood":
        flood(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "hello":
        hello(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5], 16), sys.argv[6], sys.argv[7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
