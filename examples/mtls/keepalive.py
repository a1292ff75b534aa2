"""An app that keeps one connection through tlsbridge open across a reload.

keepalive.py PROXY_PORT CA_FILE READY_FILE GO_FILE: GET /whoami, create
READY_FILE, wait for GO_FILE, GET /whoami again on the same connection;
prints both answers. Standard library only.
"""
import http.client
import os
import ssl
import sys
import time

port, cafile, ready, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
conn.set_tunnel("api.takap.dev", 443)
for step in ("before", "after"):
    if step == "after":
        open(ready, "w").close()
        deadline = time.time() + 20
        while not os.path.exists(go) and time.time() < deadline:
            time.sleep(0.05)
    conn.request("GET", "/whoami")
    print(step, conn.getresponse().read().decode().strip(), flush=True)
conn.close()
