#!/usr/bin/env python3
"""A legacy app with the TLS 1.0 adapter as forum answers give it.

The adapter overrides init_poolmanager only, pinning ssl_version to
ssl.PROTOCOL_TLSv1, and the app passes no verify=: its trust comes from the
environment (REQUESTS_CA_BUNDLE), like its proxy (HTTPS_PROXY).

    python3 forum_app.py URL

prints the JSON body, or the error and exits 1.

Behind a proxy, requests does not use this pool manager: it builds proxied
connections with proxy_manager_for, so the pin is ignored and the app
speaks its runtime's default TLS (1.2+) to tlsbridge. README.md's three
steps must work for this app as it is; run.sh checks that.
"""
import json
import ssl
import sys
import warnings

import requests
from requests.adapters import HTTPAdapter
from urllib3.poolmanager import PoolManager

warnings.filterwarnings("ignore", category=DeprecationWarning)


class MyAdapter(HTTPAdapter):
    def init_poolmanager(self, connections, maxsize, block=False):
        self.poolmanager = PoolManager(num_pools=connections,
                                       maxsize=maxsize,
                                       block=block,
                                       ssl_version=ssl.PROTOCOL_TLSv1)


def main():
    if len(sys.argv) != 2:
        print("usage: forum_app.py URL", file=sys.stderr)
        return 2
    url = sys.argv[1]
    s = requests.Session()
    s.mount("https://", MyAdapter())
    try:
        resp = s.get(url, timeout=15)
    except requests.exceptions.RequestException as exc:
        print(f"forum_app: GET {url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"forum_app: GET {url}: HTTP {resp.status_code}\n{resp.text}", file=sys.stderr)
        return 1
    print(json.dumps(resp.json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
