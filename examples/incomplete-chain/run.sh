#!/usr/bin/env bash
# incomplete-chain: nginx sends only its leaf; the intermediate sits at the
# leaf's AIA URL on a local HTTP server (python3 -m http.server), the root
# in ca_files. Without fetch_intermediates the 502 says so; with it,
# tlsbridge fetches the intermediate once (DER or PKCS #7), caches it, logs
# the server's misconfiguration, and verifies against root.pem only.
# See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init incomplete-chain
need nginx nginx
need curl curl
need openssl openssl
need python3 python3
need_tlsbridge

NGINX_PORT=$(free_port)
NGINX_P7C_PORT=$(free_port)
AIA_PORT=$(free_port)
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
CA="$WORK/tlsbridge-ca.pem"
AIA="http://127.0.0.1:$AIA_PORT"

# root -> intermediate -> leaf; the leaf names the intermediate's URL.
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -sha256 \
	-subj "/O=tlsbridge examples/CN=example root" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -keyout root-key.pem -out root.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=tlsbridge examples/CN=example intermediate" \
	-keyout inter-key.pem -out inter.csr 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >inter.ext
openssl x509 -req -in inter.csr -CA root.pem -CAkey root-key.pem -CAcreateserial -days 2 -sha256 \
	-extfile inter.ext -out inter.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=nginx.takap.dev" \
	-keyout leaf-key.pem -out leaf.csr 2>/dev/null
for kind in der p7c; do
	printf '%s\n' "subjectAltName=DNS:nginx.takap.dev" "basicConstraints=CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
		"authorityInfoAccess=caIssuers;URI:$AIA/inter.$kind" >leaf-$kind.ext
	openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter-key.pem -CAcreateserial -days 2 -sha256 \
		-extfile leaf-$kind.ext -out leaf-$kind.pem 2>/dev/null
done
mkdir -p aia
openssl x509 -in inter.pem -outform DER -out aia/inter.der
openssl crl2pkcs7 -nocrl -certfile inter.pem -outform DER -out aia/inter.p7c
cd - >/dev/null

start aia python3 -m http.server "$AIA_PORT" --bind 127.0.0.1 --directory "$WORK/aia"
wait_port aia "$AIA_PORT"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT" "NGINX_P7C_PORT=$NGINX_P7C_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" \
	"NGINX_P7C_PORT=$NGINX_P7C_PORT" "ADMIN_PORT=$ADMIN_PORT"
start_tlsbridge "$WORK/config.toml"

curl_tls out --cacert "$WORK/root.pem" --resolve "nginx.takap.dev:$NGINX_PORT:127.0.0.1" \
	"https://nginx.takap.dev:$NGINX_PORT/index.json" || true
expect "curl straight to nginx with root.pem fails: the chain is incomplete" "$out" 'unable to get local issuer certificate'

legacy() {
	curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" \
		--tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" -w '\ntime_total=%{time_total}\n' "$@" || true
}
legacy "https://off.takap.dev/index.json"
expect "fetch_intermediates off: 502 saying the intermediate is missing, with its URL" "$out" "without the intermediate that links it to a trusted root \(its certificate names the intermediate at $AIA/inter.der\)"
# shellcheck disable=SC2016 # the backquotes are the hint's own text
expect "  ... and both fixes, the key where the loader takes it" "$out" 'send the full chain .*set `fetch_intermediates = true` in \[rule.upstream\] of rule\[0\]'

legacy "https://der.takap.dev/index.json"
expect "fetch_intermediates on: TLS 1.0 app gets the JSON (intermediate fetched as DER)" "$out" '"test": "proxy-test"'
first=$(grep -Eo 'time_total=[0-9.]+' <<<"$out" | cut -d= -f2)
legacy "https://der2.takap.dev/index.json"
expect "a second host, the same URL: served from the cache" "$out" '"test": "proxy-test"'
second=$(grep -Eo 'time_total=[0-9.]+' <<<"$out" | cut -d= -f2)
# An https:// URL sent to the proxy port as a plain request (no CONNECT):
# the same dial as a CONNECT, so the chain is completed there too.
curl_tls out --request-target "https://der2.takap.dev/index.json" "http://127.0.0.1:$PROXY_PORT/" || true
expect "plain GET https:// on the proxy port: chain completed like a CONNECT" "$out" '"test": "proxy-test"'

legacy "https://p7c.takap.dev/index.json"
expect "the intermediate as PKCS #7 (.p7c)" "$out" '"test": "proxy-test"'

gets=$(grep -c 'GET /inter.der' "$WORK/aia.log" || true)
if ((gets == 1)); then pass "the AIA server was asked for inter.der once"; else fail "AIA GETs of inter.der: $gets, want 1" "$(cat "$WORK/aia.log")"; fi
expect "tlsbridge logs the server's incomplete chain for its operator" "$(cat "$WORK/tlsbridge.log")" 'sends an incomplete certificate chain .*completed it from its AIA URL'
out=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics")
expect "tlsbridge_aia_fetches_total: fetched 2 (der, p7c)" "$out" '^tlsbridge_aia_fetches_total\{result="fetched"\} 2$'
expect "tlsbridge_aia_fetches_total: cached at least 1" "$out" '^tlsbridge_aia_fetches_total\{result="cached"\} [1-9]'
out=$("$TLSBRIDGE" check -config "$WORK/config.toml" der.takap.dev 2>&1 || true)
expect "tlsbridge check completes the chain too" "$out" 'would be bumped and succeed'
pass "first request (AIA fetch) $(awk "BEGIN{printf \"%.1f\", $first*1000}") ms, second host (cache) $(awk "BEGIN{printf \"%.1f\", $second*1000}") ms"

ex_finish
