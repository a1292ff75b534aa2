#!/usr/bin/env bash
# stream-tunnel: apps without proxy support reach TLS-1.2+-only services
# through tlsbridge's fixed tunnels ([[listener]]). See README.md.
#   - a plain-TCP line app -> client_tls = false listener -> openssl s_server -tls1_2
#   - curl --http2 -> client_tls = true listener -> nginx with http2 (ALPN h2 on both legs)
#   - curl --http2 -> client_tls = true listener -> nginx without http2 (falls back to http/1.1)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init stream-tunnel
need nginx nginx
need openssl openssl
need curl curl
need python3 python3
need_tlsbridge
if ! curl -V | grep -q '^Features:.*HTTP2'; then
	skip "curl with HTTP/2 (nghttp2)" curl
fi

SSERVER_PORT=$(free_port)
NGINX_PORT=$(free_port)
NGINX_H1_PORT=$(free_port)
PROXY_PORT=$(free_port)
LINE_PORT=$(free_port)
H2_PORT=$(free_port)
H1_PORT=$(free_port)
LINES=2000
URL="https://$ORIGIN_HOST/index.json"

make_origin_certs "$WORK"
# The line service: TLS 1.2 only, echoes every line reversed. It never reads
# stdin (asynchronous commands get /dev/null) and logs each handshake.
start s_server openssl s_server -rev -tls1_2 -accept "127.0.0.1:$SSERVER_PORT" \
	-cert "$WORK/nginx.pem" -key "$WORK/nginx-key.pem"
wait_port s_server "$SSERVER_PORT"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT" "NGINX_H1_PORT=$NGINX_H1_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "LINE_PORT=$LINE_PORT" \
	"H2_PORT=$H2_PORT" "H1_PORT=$H1_PORT" "SSERVER_PORT=$SSERVER_PORT" \
	"NGINX_PORT=$NGINX_PORT" "NGINX_H1_PORT=$NGINX_H1_PORT"
start_tlsbridge "$WORK/config.toml"
for port in "$LINE_PORT" "$H2_PORT" "$H1_PORT"; do
	wait_port tlsbridge "$port"
done

app() { # app PORT: run the line app against 127.0.0.1:PORT, output in $out
	local rc=0
	out=$(timeout "$CLIENT_TIMEOUT" python3 "$EX_DIR/app.py" 127.0.0.1 "$1" "$LINES" 2>&1) || rc=$?
	return "$rc"
}
# access_of LISTENER: tlsbridge's access lines for one listener.
access_of() {
	grep 'msg=access' "$WORK/tlsbridge.log" | grep -F "rule=\"$1\"" || true
}

# 1. Without tlsbridge the plain app gets nothing back: the service wants TLS.
if app "$SSERVER_PORT"; then
	fail "plain-TCP app direct to the TLS 1.2 service: want no reply, got one" "$out"
else
	pass "plain-TCP app direct to the TLS 1.2 service: no usable reply ($out)"
fi

# 2. Through the client_tls = false listener, every line comes back exactly.
t0=$(date +%s%N)
app "$LINE_PORT" || true
ms=$((($(date +%s%N) - t0) / 1000000))
expect "plain-TCP app via [[listener]] client_tls=false, half-closed after sending: $out in $ms ms" \
	"$out" "^sent $LINES lines \(([0-9]+) bytes\), got $LINES lines back, $LINES reversed exactly$"

# 3. The service negotiated TLS 1.2 with tlsbridge.
expect "openssl s_server -tls1_2 saw: $(grep -m1 -o 'Protocol version: .*' "$WORK/s_server.log" || true)" \
	"$(cat "$WORK/s_server.log")" '^Protocol version: TLSv1\.2$'

# 4. tlsbridge logged one access line with both sides and the byte counts.
sleep 0.2
log=$(access_of 'listener[0]' | tail -n 1)
in=$(access_field bytes_in "$log")
outb=$(access_field bytes_out "$log")
if [[ $(access_field client_tls "$log") == - && $(access_field upstream_tls "$log") == TLS1.2 && -n $in && $in == "$outb" && $in -gt 0 ]]; then
	pass "tlsbridge access log: listener[0] plain app -> upstream $(access_field upstream_tls "$log")/$(access_field upstream_cipher "$log"), bytes_in=$in bytes_out=$outb"
else
	fail "tlsbridge access log: want listener[0] with client_tls=- upstream_tls=TLS1.2 and equal byte counts" "$log"
fi

# 5. curl --http2 through the client_tls = true listener: HTTP/2 end to end.
# --connect-to sends nginx.takap.dev:443 to the listener: no /etc/hosts entry.
rc=0
curl_tls out --http2 --cacert "$WORK/tlsbridge-ca.pem" --connect-to "$ORIGIN_HOST:443:127.0.0.1:$H2_PORT" \
	-w '\nhttp_version=%{http_version}\n' "$URL" || rc=$?
expect "curl --http2 via [[listener]] client_tls=true: $(grep -Eo 'ALPN: server accepted [^ ]+' <<<"$out" | head -n 1), $(tls_summary "$out"), $(grep -Eo 'http_version=.*' <<<"$out")" \
	"$out" 'http_version=2$'
expect "curl --http2 via the listener: nginx's h2 body" "$out" '"h2": true'

# 6. nginx served that request over HTTP/2.0 and TLS 1.2+.
sleep 0.2
log=$(grep "port=$NGINX_PORT" "$WORK/nginx/logs/access.log" || true)
expect "nginx access log: $(tail -n 1 <<<"$log" | grep -Eo 'HTTP/2\.0 TLSv1\.[23] [^ ]+' || true)" "$log" ' 200 HTTP/2\.0 TLSv1\.[23] '
expect "tlsbridge access log: listener[1] alpn=$(access_field alpn "$(access_of 'listener[1]')")" "$(access_of 'listener[1]')" 'alpn=h2 '

# 7. The same through a listener whose upstream has no h2: http/1.1 on both legs.
curl_tls out --http2 --cacert "$WORK/tlsbridge-ca.pem" --connect-to "$ORIGIN_HOST:443:127.0.0.1:$H1_PORT" \
	-w '\nhttp_version=%{http_version}\n' "$URL" || true
expect "curl --http2 via a listener to nginx without http2: falls back to $(grep -Eo 'http_version=.*' <<<"$out")" \
	"$out" 'http_version=1\.1$'
sleep 0.2
log=$(grep "port=$NGINX_H1_PORT" "$WORK/nginx/logs/access.log" || true)
expect "nginx (no http2) access log: $(tail -n 1 <<<"$log" | grep -Eo 'HTTP/1\.1 TLSv1\.[23]' || true)" "$log" ' 200 HTTP/1\.1 TLSv1\.[23] '

# 8. A legacy app: curl pinned to TLS 1.0 (OpenSSL 3 needs @SECLEVEL=0) into
# the client_tls = true listener; nginx still sees TLS 1.2+. curl offers h2
# even over TLS 1.0; tlsbridge does not pass it on (HTTP/2 needs TLS 1.2,
# RFC 9113 section 9.2), so this request is HTTP/1.1.
curl_tls out --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" --cacert "$WORK/tlsbridge-ca.pem" \
	--connect-to "$ORIGIN_HOST:443:127.0.0.1:$H2_PORT" -w '\nhttp_version=%{http_version}\n' "$URL" || true
expect "curl --tlsv1.0 via [[listener]] client_tls=true: $(tls_summary "$out")" "$out" 'SSL connection using TLSv1 / '
expect "curl --tlsv1.0 via the listener: nginx's body over $(grep -Eo 'http_version=.*' <<<"$out")" "$out" 'http_version=1\.1$'
log=$(access_of 'listener[1]' | tail -n 1)
expect "tlsbridge access log: listener[1] client $(access_field client_tls "$log") -> upstream $(access_field upstream_tls "$log")" \
	"$log" 'client_tls=TLS1\.0 .*upstream_tls=TLS1\.[23]'

ex_finish
