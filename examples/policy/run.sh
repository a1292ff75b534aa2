#!/usr/bin/env bash
# policy: deny, tunnel, auto and bump rules seen from a client, and the 502
# a legacy app gets when the upstream side fails. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init policy
need nginx nginx
need curl curl
need openssl openssl
need_tlsbridge

NGINX_PORT=$(free_port)
NGINX12_PORT=$(free_port)
HTTP_PORT=$(free_port)
PROXY_PORT=$(free_port)
BODY='\{ "test": "proxy-test" \}'

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT" "NGINX12_PORT=$NGINX12_PORT" "HTTP_PORT=$HTTP_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" \
	"NGINX_PORT=$NGINX_PORT" "NGINX12_PORT=$NGINX12_PORT" "HTTP_PORT=$HTTP_PORT"
start_tlsbridge "$WORK/config.toml"
CA="$WORK/tlsbridge-ca.pem"
ORIGIN_CA="$WORK/nginx-ca.pem"
TLS10=(--tlsv1.0 --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0')
TLS13=(--tlsv1.3)

# pcurl OUTVAR URL CURL_ARGS...: curl through the proxy; OUTVAR gets the
# verbose output plus "connect=<CONNECT status> status=<HTTP status>".
pcurl() {
	local __out=$1 url=$2
	shift 2
	curl_tls "$__out" --proxy "http://127.0.0.1:$PROXY_PORT" -w '\nconnect=%{http_connect} status=%{http_code}\n' "$@" "$url"
}
issuer() { grep -Eo 'issuer: .*' <<<"$1" | head -n 1; }

# deny → 403 on the CONNECT.
pcurl out "https://deny.takap.dev/index.json" --cacert "$CA" "${TLS10[@]}" || true
expect "deny rule: curl --tlsv1.0 CONNECT deny.takap.dev:443 answered $(grep -Eo 'connect=[0-9]+' <<<"$out")" "$out" 'connect=403'

# A port outside connect_ports → 403.
pcurl out "https://nginx.takap.dev:8443/index.json" --cacert "$CA" "${TLS10[@]}" || true
expect "connect_ports = [443]: CONNECT nginx.takap.dev:8443 answered $(grep -Eo 'connect=[0-9]+' <<<"$out")" "$out" 'connect=403'

# tunnel → the client sees nginx's own certificate: it verifies with nginx's
# CA and not with tlsbridge's.
if pcurl out "https://tunnel.takap.dev/index.json" --cacert "$ORIGIN_CA" "${TLS13[@]}" && grep -Eq "$BODY" <<<"$out"; then
	expect "tunnel rule: curl --tlsv1.3 $(tls_summary "$out") sees nginx's own certificate ($(issuer "$out"))" \
		"$(issuer "$out")" 'example origin CA'
else
	fail "tunnel rule: curl --tlsv1.3 --cacert nginx-ca.pem: want the JSON" "$out"
fi
if pcurl out "https://tunnel.takap.dev/index.json" --cacert "$CA" "${TLS13[@]}"; then
	fail "tunnel rule: curl trusting only tlsbridge's CA must fail (the certificate is nginx's)" "$out"
else
	expect "tunnel rule: curl trusting only tlsbridge's CA fails verification (untouched TLS)" "$out" 'certificate|SSL'
fi
# ...and a TLS 1.0 client is not upgraded: nginx itself refuses it.
if pcurl out "https://tunnel.takap.dev/index.json" --cacert "$ORIGIN_CA" "${TLS10[@]}"; then
	fail "tunnel rule: curl --tlsv1.0 must reach nginx untouched and be refused" "$out"
else
	expect "tunnel rule: curl --tlsv1.0 reaches nginx untouched and nginx refuses it" "$out" 'protocol version|unsupported protocol|alert'
fi

# auto → a TLS 1.0 client is bumped (tlsbridge's certificate), a TLS 1.3
# client is tunnelled (nginx's certificate).
if pcurl out "https://nginx.takap.dev/index.json" --cacert "$CA" "${TLS10[@]}" && grep -Eq "$BODY" <<<"$out"; then
	expect "auto rule: curl --tlsv1.0 'DEFAULT:@SECLEVEL=0' $(tls_summary "$out") is bumped ($(issuer "$out"))" \
		"$(issuer "$out")" 'tlsbridge'
else
	fail "auto rule: curl --tlsv1.0: want the JSON with tlsbridge's certificate" "$out"
fi
if pcurl out "https://nginx.takap.dev/index.json" --cacert "$ORIGIN_CA" "${TLS13[@]}" && grep -Eq "$BODY" <<<"$out"; then
	expect "auto rule: curl --tlsv1.3 $(tls_summary "$out") is tunnelled untouched ($(issuer "$out"))" \
		"$(issuer "$out")" 'example origin CA'
else
	fail "auto rule: curl --tlsv1.3 --cacert nginx-ca.pem: want the JSON with nginx's certificate" "$out"
fi
if pcurl out "https://nginx.takap.dev/index.json" --cacert "$ORIGIN_CA" --tlsv1.2 --tls-max 1.2 && grep -Eq "$BODY" <<<"$out"; then
	expect "auto rule: curl --tlsv1.2 --tls-max 1.2 $(tls_summary "$out") is tunnelled untouched (offers the upstream minimum itself)" \
		"$(issuer "$out")" 'example origin CA'
else
	fail "auto rule: curl --tlsv1.2 --tls-max 1.2 --cacert nginx-ca.pem: want the JSON with nginx's certificate" "$out"
fi

# Upstream min_tls = "1.3" against a TLS-1.2-only nginx → the app's TLS 1.0
# handshake succeeds and its request gets a 502 that explains.
pcurl out "https://strict.takap.dev/index.json" --cacert "$CA" "${TLS10[@]}" || true
if grep -q 'status=502' <<<"$out" && grep -q '1\.3' <<<"$out" && grep -q '1\.2' <<<"$out"; then
	pass "upstream min_tls 1.3 vs TLS-1.2-only nginx: curl --tlsv1.0 $(tls_summary "$out") gets 502: $(grep -m1 -Ei 'what failed|version' <<<"$out" | cut -c1-160)"
else
	fail "upstream min_tls 1.3 vs TLS-1.2-only nginx: want 502 whose body names 1.3 and 1.2" "$out"
fi

# Origin CA not in ca_files → 502 naming the unknown authority and the fix.
pcurl out "https://untrusted.takap.dev/index.json" --cacert "$CA" "${TLS10[@]}" || true
if grep -q 'status=502' <<<"$out" && grep -qi 'unknown authority' <<<"$out" && grep -q 'ca_files' <<<"$out"; then
	pass "origin CA not in ca_files: curl --tlsv1.0 $(tls_summary "$out") gets 502: $(grep -m1 -i 'unknown authority' <<<"$out" | cut -c1-160)"
else
	fail "origin CA not in ca_files: want 502 whose body names the unknown authority and ca_files" "$out"
fi

# The same 502 for an openssl s_client -tls1 (RSA key exchange) app.
out=$(printf 'GET /index.json HTTP/1.1\r\nHost: untrusted.takap.dev\r\nConnection: close\r\n\r\n' |
	timeout "$CLIENT_TIMEOUT" openssl s_client -connect untrusted.takap.dev:443 -proxy "127.0.0.1:$PROXY_PORT" \
		-CAfile "$CA" -tls1 -cipher 'AES128-SHA:@SECLEVEL=0' -servername untrusted.takap.dev -ign_eof 2>&1) || true
expect "origin CA not in ca_files: openssl s_client -tls1 AES128-SHA gets HTTP 502 inside its verified TLS session" \
	"$(grep -E 'Verify return code|HTTP/1' <<<"$out" | paste -sd' ' -)" 'Verify return code: 0 \(ok\).*HTTP/1\.[01] 502'

# Plain http:// through the proxy is forwarded to port 80 and connect_ports,
# and refused elsewhere.
pcurl out "http://127.0.0.1:$NGINX12_PORT/index.json" || true
expect "plain http:// to a port outside connect_ports: $(grep -Eo 'status=[0-9]+' <<<"$out")" "$out" 'status=403'
if pcurl out "http://127.0.0.1:$HTTP_PORT/index.json" && grep -Eq "$BODY" <<<"$out"; then
	pass "plain http:// through the proxy: forwarded ($(grep -Eo 'status=[0-9]+' <<<"$out"))"
else
	fail "plain http:// through the proxy: want the JSON" "$out"
fi

ex_finish
