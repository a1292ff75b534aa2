#!/usr/bin/env python3
"""A legacy app that can only speak TLS 1.0.

The classic pattern: a requests Session mounts an HTTPAdapter whose urllib3
PoolManager is pinned to ssl.PROTOCOL_TLSv1. Modern servers (nginx with
`ssl_protocols TLSv1.2 TLSv1.3;`) reject it; through tlsbridge it works.

    python3 app.py URL CA_FILE

prints the JSON body, or the error and exits 1. The proxy comes from the
environment (HTTPS_PROXY), like any requests app.
"""
import json
import ssl
import sys
import warnings

import requests
from requests.adapters import HTTPAdapter
from urllib3.poolmanager import PoolManager

# ssl.PROTOCOL_TLSv1 is deprecated, which is the point of this app.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def tls1_context():
    """An ssl context that offers TLS 1.0 only.

    OpenSSL 3 refuses TLS 1.0's SHA-1/MD5 signatures at its default security
    level: without @SECLEVEL=0 the client offers TLS 1.0 and then aborts the
    handshake ("legacy sigalg disallowed or unsupported").
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLSv1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


class TLSv1Adapter(HTTPAdapter):
    """Pin every connection of the session to TLS 1.0."""

    def init_poolmanager(self, connections, maxsize, block=False, **kwargs):
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            ssl_version=ssl.PROTOCOL_TLSv1,
            ssl_context=tls1_context(),
            **kwargs,
        )

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # requests builds proxy managers separately from init_poolmanager:
        # without this, proxied requests would not use TLS 1.0 at all. With
        # HTTPS_PROXY=https://..., the TLS to the proxy is TLS 1.0 as well.
        proxy_kwargs.setdefault("ssl_version", ssl.PROTOCOL_TLSv1)
        proxy_kwargs.setdefault("ssl_context", tls1_context())
        proxy_kwargs.setdefault("proxy_ssl_context", tls1_context())
        return super().proxy_manager_for(proxy, **proxy_kwargs)


def main():
    if len(sys.argv) != 3:
        print("usage: app.py URL CA_FILE", file=sys.stderr)
        return 2
    url, ca_file = sys.argv[1], sys.argv[2]
    session = requests.Session()
    session.mount("https://", TLSv1Adapter())
    try:
        resp = session.get(url, verify=ca_file, timeout=15)
    except requests.exceptions.RequestException as exc:
        print(f"app: GET {url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"app: GET {url}: HTTP {resp.status_code}\n{resp.text}", file=sys.stderr)
        return 1
    print(json.dumps(resp.json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
