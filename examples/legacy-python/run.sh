#!/usr/bin/env bash
# legacy-python: a requests app pinned to TLS 1.0 reaches a TLS-1.2+-only
# nginx through tlsbridge. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init legacy-python
need nginx nginx
need openssl openssl
PY=$(python_with_requests) || skip python3-requests python3-requests
need_tlsbridge

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT"
start_tlsbridge "$WORK/config.toml"

app() { # app HTTPS_PROXY URL CA_FILE: run app.py, output in $out
	local rc=0
	out=$(HTTPS_PROXY=$1 timeout "$CLIENT_TIMEOUT" "$PY" "$EX_DIR/app.py" "$2" "$3" 2>&1) || rc=$?
	return "$rc"
}
JSON='^\{"test": "proxy-test"\}$'

# 1. Without tlsbridge the app fails: nginx refuses TLS 1.0. (Straight to
# nginx's port, trusting nginx's own CA, so the version is the only problem.)
if app "" "https://127.0.0.1:$NGINX_PORT/index.json" "$WORK/nginx-ca.pem"; then
	fail "python-requests TLSv1 direct to nginx (TLS 1.2+ only): want a handshake failure, got success" "$out"
else
	expect "python-requests TLSv1 direct to nginx: refused ($(grep -Eio 'unsupported protocol|protocol version|no protocols available' <<<"$out" | head -n 1))" \
		"$out" 'UNSUPPORTED_PROTOCOL|unsupported protocol|PROTOCOL_VERSION|protocol version|NO_PROTOCOLS_AVAILABLE'
fi

# 2. Through tlsbridge, plain-HTTP proxy URL.
app "http://127.0.0.1:$PROXY_PORT" "$URL" "$WORK/tlsbridge-ca.pem" || true
expect "python-requests TLSv1 DEFAULT:@SECLEVEL=0 via HTTPS_PROXY=http://127.0.0.1:PORT: $out" "$out" "$JSON"

# 3. Through tlsbridge, TLS to the proxy itself (the classic trap): the app
# speaks TLS 1.0 to the proxy port and TLS 1.0 inside the tunnel.
app "https://127.0.0.1:$PROXY_PORT" "$URL" "$WORK/tlsbridge-ca.pem" || true
expect "python-requests TLSv1 DEFAULT:@SECLEVEL=0 via HTTPS_PROXY=https://127.0.0.1:PORT (TLSv1 to the proxy too): $out" "$out" "$JSON"

# 4. nginx saw TLS 1.2 or 1.3 for those requests, never TLS 1.0.
sleep 0.2
expect_origin_modern 2

# 5. tlsbridge's access log shows both sides: TLS 1.0 from the app, 1.2+ upstream.
log=$(grep 'msg=access' "$WORK/tlsbridge.log" | grep "host=$ORIGIN_HOST" || true)
n=$(grep -Ec 'client_tls=TLS1\.0 .*upstream_tls=TLS1\.[23]' <<<"$log" || true)
if ((n >= 2)); then
	pass "tlsbridge access log: $n requests client $(access_field client_tls "$log")/$(access_field client_cipher "$log") -> upstream $(access_field upstream_tls "$log")/$(access_field upstream_cipher "$log")"
else
	fail "tlsbridge access log: want 2 lines with client_tls=TLS1.0 and upstream_tls=TLS1.2/1.3" "$log"
fi

ex_finish
