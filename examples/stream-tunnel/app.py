#!/usr/bin/env python3
"""A plain-TCP line client: no TLS, no proxy setting, like the log
forwarders and database drivers that connect straight to host:port.

usage: app.py HOST PORT LINES

It sends LINES random lines, half-closes its side (shutdown SHUT_WR), reads
every reply line until the server closes, and checks that each came back
reversed (openssl s_server -rev). Exit status 0 when all did.
"""
import random
import socket
import string
import sys


def main() -> int:
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    lines = ["".join(rng.choices(alphabet, k=rng.randint(1, 200))) for _ in range(n)]
    data = "".join(line + "\n" for line in lines).encode()
    try:
        with socket.create_connection((host, port), timeout=15) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as e:
        print(f"app: {host}:{port}: {e}")
        return 1
    got = b"".join(chunks).decode(errors="replace").splitlines()
    ok = sum(1 for want, line in zip(lines, got) if want[::-1] == line)
    print(f"sent {n} lines ({len(data)} bytes), got {len(got)} lines back, {ok} reversed exactly")
    return 0 if ok == n == len(got) else 1


if __name__ == "__main__":
    sys.exit(main())
