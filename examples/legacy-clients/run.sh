#!/usr/bin/env bash
# legacy-clients: curl and openssl s_client at TLS 1.0, 1.1, 1.2 and 1.3,
# with several cipher suites (RSA key exchange included), through tlsbridge
# to a TLS-1.2+-only nginx. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init legacy-clients
need nginx nginx
need curl curl
need openssl openssl
need_tlsbridge

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"
BODY='\{ "test": "proxy-test" \}'

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT"
start_tlsbridge "$WORK/config.toml"
CA="$WORK/tlsbridge-ca.pem"

# curl_ok LABEL CURL_ARGS...: curl through the proxy, trusting only
# tlsbridge's CA (no -k), must get the JSON over the TLS version asked for.
curl_ok() {
	local label=$1 out
	shift
	if curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" "$@" "$URL" &&
		grep -Eq "$BODY" <<<"$out"; then
		pass "curl $label: $(tls_summary "$out"), verified, JSON ok"
	else
		fail "curl $label: want the JSON" "$(grep -E 'SSL|curl:|error|HTTP/' <<<"$out")"
	fi
}

curl_ok "--tlsv1.0 --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0'" \
	--tlsv1.0 --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0'
curl_ok "--tlsv1.0 --tls-max 1.0 --ciphers 'AES128-SHA:@SECLEVEL=0' (RSA key exchange)" \
	--tlsv1.0 --tls-max 1.0 --ciphers 'AES128-SHA:@SECLEVEL=0'
curl_ok "--tlsv1.0 --tls-max 1.0 --ciphers 'ECDHE-RSA-AES256-SHA:@SECLEVEL=0' (RSA leaf)" \
	--tlsv1.0 --tls-max 1.0 --ciphers 'ECDHE-RSA-AES256-SHA:@SECLEVEL=0'
curl_ok "--tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0'" \
	--tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0'
curl_ok "--tlsv1.1 --tls-max 1.1 --ciphers 'AES256-SHA:@SECLEVEL=0' (RSA key exchange)" \
	--tlsv1.1 --tls-max 1.1 --ciphers 'AES256-SHA:@SECLEVEL=0'
curl_ok "--tlsv1.2 --tls-max 1.2 --ciphers AES128-GCM-SHA256 (RSA key exchange)" \
	--tlsv1.2 --tls-max 1.2 --ciphers AES128-GCM-SHA256
curl_ok "--tlsv1.3 (modern client)" --tlsv1.3

# The trap the README documents: OpenSSL 3 at its default security level
# offers TLS 1.0 and then aborts the handshake itself.
if curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" --tlsv1.0 --tls-max 1.0 "$URL"; then
	fail "curl --tlsv1.0 --tls-max 1.0 without @SECLEVEL=0: want OpenSSL 3 to refuse (see README)" "$out"
else
	expect "curl --tlsv1.0 --tls-max 1.0 without @SECLEVEL=0: the client refuses, as documented" \
		"$out" 'legacy sigalg disallowed|internal error|handshake failure'
fi

# TLS to the proxy port itself (HTTPS_PROXY=https://...), TLS 1.0 inside.
if curl_tls out --proxy "https://127.0.0.1:$PROXY_PORT" --proxy-cacert "$CA" --cacert "$CA" \
	--tlsv1.0 --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0' "$URL" &&
	grep -Eq "$BODY" <<<"$out"; then
	pass "curl --proxy https://127.0.0.1:PORT --tlsv1.0 --tls-max 1.0 'DEFAULT:@SECLEVEL=0': proxy $(grep -Eo 'SSL connection using [^ ]+ / [^ ]+' <<<"$out" | head -n 1 | sed 's/SSL connection using //'), origin $(tls_summary "$out"), JSON ok"
else
	fail "curl --proxy https://127.0.0.1:PORT --tlsv1.0: want the JSON" "$(grep -E 'SSL|curl:|error|HTTP/' <<<"$out")"
fi

# The proxy port's own certificate: valid for 127.0.0.1 and localhost, from
# the same CA, served to a TLS 1.0 client too.
for name in 127.0.0.1 localhost; do
	if [[ $name == 127.0.0.1 ]]; then check=(-verify_ip 127.0.0.1); else check=(-verify_hostname localhost -servername localhost); fi
	out=$(timeout "$CLIENT_TIMEOUT" openssl s_client -connect "127.0.0.1:$PROXY_PORT" -tls1 -cipher 'DEFAULT:@SECLEVEL=0' \
		-CAfile "$CA" -verify_return_error "${check[@]}" </dev/null 2>&1) || true
	expect "openssl s_client -tls1 'DEFAULT:@SECLEVEL=0' to the proxy port itself, ${check[0]} $name: $(tls_summary "$out"), $(grep -o 'Verify return code: [^)]*)' <<<"$out" | head -n 1)" \
		"$out" 'Verify return code: 0 \(ok\)'
done

# openssl s_client through -proxy, verifying the chain and the host name.
# SNI_ARGS: "-servername nginx.takap.dev" or "-noservername" (then tlsbridge
# picks the certificate from the CONNECT host).
s_client_ok() {
	local label=$1 out rc=0
	shift
	out=$(printf 'GET /index.json HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$ORIGIN_HOST" |
		timeout "$CLIENT_TIMEOUT" openssl s_client -connect "$ORIGIN_HOST:443" -proxy "127.0.0.1:$PROXY_PORT" \
			-CAfile "$CA" -verify_hostname "$ORIGIN_HOST" -verify_return_error -ign_eof "$@" 2>&1) || rc=$?
	if ((rc == 0)) && grep -q 'Verify return code: 0 (ok)' <<<"$out" && grep -Eq "$BODY" <<<"$out"; then
		pass "openssl s_client $label: $(tls_summary "$out"), Verify return code: 0 (ok), JSON ok"
	else
		fail "openssl s_client $label: want Verify return code: 0 and the JSON (exit $rc)" \
			"$(grep -E 'Verify|Protocol|Cipher|error|alert|HTTP/' <<<"$out")"
	fi
}

s_client_ok "-tls1 -cipher 'DEFAULT:@SECLEVEL=0' -servername (SNI)" \
	-tls1 -cipher 'DEFAULT:@SECLEVEL=0' -servername "$ORIGIN_HOST"
s_client_ok "-tls1 -cipher 'DEFAULT:@SECLEVEL=0' -noservername (no SNI)" \
	-tls1 -cipher 'DEFAULT:@SECLEVEL=0' -noservername
s_client_ok "-tls1 -cipher 'AES128-SHA:@SECLEVEL=0' -servername (RSA key exchange only)" \
	-tls1 -cipher 'AES128-SHA:@SECLEVEL=0' -servername "$ORIGIN_HOST"
s_client_ok "-tls1 -cipher 'AES128-SHA:@SECLEVEL=0' -noservername (RSA key exchange only, no SNI)" \
	-tls1 -cipher 'AES128-SHA:@SECLEVEL=0' -noservername
s_client_ok "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -servername" \
	-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -servername "$ORIGIN_HOST"
s_client_ok "-tls1_2 -cipher 'ECDHE-RSA-AES128-GCM-SHA256' -servername (RSA leaf)" \
	-tls1_2 -cipher 'ECDHE-RSA-AES128-GCM-SHA256' -servername "$ORIGIN_HOST"

# A wrong -verify_hostname must fail: the leaf is for nginx.takap.dev only.
out=$(timeout "$CLIENT_TIMEOUT" openssl s_client -connect "$ORIGIN_HOST:443" -proxy "127.0.0.1:$PROXY_PORT" \
	-CAfile "$CA" -tls1 -cipher 'DEFAULT:@SECLEVEL=0' -servername "$ORIGIN_HOST" \
	-verify_hostname other.example.com </dev/null 2>&1) || true
expect "openssl s_client -tls1 -verify_hostname other.example.com: rejected (the minted leaf names only $ORIGIN_HOST)" \
	"$out" 'Verify return code: 62 |hostname mismatch'

# nginx never saw anything older than TLS 1.2.
expect_origin_modern 1

ex_finish
