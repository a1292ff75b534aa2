#!/usr/bin/env bash
# census: three legacy apps (python3 at TLS 1.0, curl at TLS 1.1, java at
# TLS 1.0), a modern one (openssl s_client at TLS 1.3) and a failing
# upstream go through tlsbridge to a TLS-1.2+-only nginx; then the census
# page is opened in headless Chromium, its DOM checked (each app by its
# process name and TLS version, the failure with its fix), a screenshot
# saved, and /census.json and `tlsbridge census` checked against the same
# facts. See README.md. The screenshot and page are kept in
# CENSUS_OUT (default examples/census/out).
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init census
need nginx nginx
need curl curl
need openssl openssl
need jq jq
need javac default-jdk-headless
need keytool default-jdk-headless
need java default-jdk-headless
need chromium chromium
need_tlsbridge
PY=$(python_with_requests) || skip "python3 with requests" python3-requests

OUT=${CENSUS_OUT:-$EX_DIR/out}
mkdir -p "$OUT"
NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"
BODY='"test": "proxy-test"'
ADMIN="http://127.0.0.1:$ADMIN_PORT"

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" "ADMIN_PORT=$ADMIN_PORT"
start_tlsbridge "$WORK/config.toml"
wait_port tlsbridge "$ADMIN_PORT"
CA="$WORK/tlsbridge-ca.pem"

# 1. The Python TLSv1 app (requests, ssl.PROTOCOL_TLSv1, @SECLEVEL=0).
if out=$(HTTPS_PROXY="http://127.0.0.1:$PROXY_PORT" timeout "$CLIENT_TIMEOUT" "$PY" "$EX_DIR/../legacy-python/app.py" "$URL" "$CA" 2>&1) &&
	grep -q "$BODY" <<<"$out"; then
	pass "python3 app (ssl.PROTOCOL_TLSv1): JSON ok"
else
	fail "python3 app (ssl.PROTOCOL_TLSv1): want the JSON" "$out"
fi

# 2. curl at TLS 1.1, twice to the good host, once to the untrusted one.
for i in 1 2; do
	if curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" --tlsv1.1 --tls-max 1.1 --ciphers "$LEGACY_CIPHERS" "$URL" &&
		grep -q "$BODY" <<<"$out"; then
		pass "curl --tlsv1.1 --tls-max 1.1 '$LEGACY_CIPHERS' #$i: $(tls_summary "$out"), JSON ok"
	else
		fail "curl --tlsv1.1 #$i: want the JSON" "$(grep -E 'SSL|curl:|error|HTTP/' <<<"$out")"
	fi
done
curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" --tlsv1.1 --tls-max 1.1 --ciphers "$LEGACY_CIPHERS" \
	-o /dev/null -w 'status=%{http_code}\n' "https://untrusted.takap.dev/index.json?token=census-secret" || true
expect "curl --tlsv1.1 to untrusted.takap.dev (origin CA not in ca_files): 502 inside TLS 1.1" "$out" 'status=502'

# 3. The Java app at TLSv1 (java.security override, truststore from the CA).
keytool -importcert -noprompt -alias tlsbridge -file "$CA" \
	-keystore "$WORK/truststore.p12" -storetype PKCS12 -storepass changeit >/dev/null 2>&1
mkdir -p "$WORK/classes"
if ! out=$(timeout 60 javac -d "$WORK/classes" "$EX_DIR/../legacy-java/LegacyClient.java" 2>&1); then
	fail "javac LegacyClient.java" "$out"
elif out=$(timeout "$CLIENT_TIMEOUT" java -cp "$WORK/classes" \
	-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort="$PROXY_PORT" \
	-Djavax.net.ssl.trustStore="$WORK/truststore.p12" -Djavax.net.ssl.trustStorePassword=changeit \
	-Djava.security.properties="$EX_DIR/../legacy-java/java.security" -Djdk.tls.client.protocols=TLSv1 \
	LegacyClient "$URL" 2>&1) && grep -q '^protocol=TLSv1 ' <<<"$out" && grep -q "$BODY" <<<"$out"; then
	pass "java -Djdk.tls.client.protocols=TLSv1: $(grep -Eo 'protocol=[^ ]+ cipher=[^ ]+' <<<"$out"), JSON ok"
else
	fail "java -Djdk.tls.client.protocols=TLSv1: want protocol=TLSv1 and the JSON" "$out"
fi

# 4. A modern app: openssl s_client at TLS 1.3 through the proxy.
out=$(printf 'GET /index.json HTTP/1.0\r\nHost: %s\r\n\r\n' "$ORIGIN_HOST" |
	timeout "$CLIENT_TIMEOUT" openssl s_client -quiet -proxy "127.0.0.1:$PROXY_PORT" -connect "$ORIGIN_HOST:443" \
		-servername "$ORIGIN_HOST" -tls1_3 -CAfile "$CA" -verify_return_error 2>&1) || true
expect "openssl s_client -tls1_3 (a modern app): JSON ok" "$out" "$BODY"

# The census counts a connection when it ends; give the last ones a moment.
for ((i = 0; i < 50; i++)); do
	n=$(curl -sS "$ADMIN/census.json" | jq '.connections' 2>/dev/null || echo 0)
	((n >= 6)) && break
	sleep 0.1
done

# The page in headless Chromium: the DOM after load, and a screenshot.
CHROME=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
	--disable-background-networking --disable-component-update --disable-sync)
if dom=$(timeout 60 "${CHROME[@]}" --user-data-dir="$(mktemp -d "$WORK/chrome.XXXXXX")" --dump-dom "$ADMIN/" 2>"$WORK/chromium-dom.log"); then
	printf '%s\n' "$dom" >"$OUT/census.html"
	pass "chromium --headless --dump-dom $ADMIN/: $(wc -c <<<"$dom") bytes of DOM"
else
	fail "chromium --headless --dump-dom $ADMIN/" "$(tail -n 5 "$WORK/chromium-dom.log")"
fi
# app_row NAME: the app's row in the DOM (one line: <tr class="app" ...>).
for want in "python3 1.0" "curl 1.1" "java 1.0" "openssl 1.3"; do
	app=${want% *} v=${want#* }
	expect "page: $app listed by its process name, highest TLS offered $v" "$dom" \
		"<tr class=\"app\" data-app=\"$app\" data-tls=\"${v//./\\.}\""
done
expect "page: headline counts 2 apps on TLS 1.0, 1 on TLS 1.1, 1 failing" "$dom" \
	'id="headline">2 apps still need TLS 1\.0, 1 TLS 1\.1; 1 failing<'
failures=$(sed -n '/id="failures"/,/<\/div>$/p' <<<"$dom")
expect "page: the failure (curl → untrusted.takap.dev) with its fix" "$failures" \
	'<strong>curl</strong> → untrusted\.takap\.dev:443.*unknown_authority.*Fix: .*ca_files'
expect "page: the CA's fingerprint and download links" "$dom" 'id="fingerprint">[0-9A-F:]{95}<.*href="/ca\.pem".*href="/ca\.der"'
if grep -q 'census-secret' <<<"$dom"; then fail "page shows the query string of a request"; else pass "page: no query string"; fi

if timeout 60 "${CHROME[@]}" --user-data-dir="$(mktemp -d "$WORK/chrome.XXXXXX")" \
	--screenshot="$OUT/census.png" --window-size=1280,900 --hide-scrollbars "$ADMIN/" >"$WORK/chromium-shot.log" 2>&1 &&
	[[ -s $OUT/census.png ]]; then
	pass "chromium --screenshot: $OUT/census.png ($(wc -c <"$OUT/census.png") bytes)"
else
	fail "chromium --screenshot" "$(tail -n 5 "$WORK/chromium-shot.log")"
fi

# /census.json: the same facts.
json=$(curl -sS "$ADMIN/census.json")
printf '%s\n' "$json" >"$OUT/census.json"
for want in "python3 1.0" "curl 1.1" "java 1.0" "openssl 1.3"; do
	app=${want% *} v=${want#* }
	got=$(jq -r --arg a "$app" '.apps[] | select(.app == $a and .kind == "process") | "\(.max_offered_tls) pid=\(.pid) \(.hosts | map(.host) | join(","))"' <<<"$json")
	expect "census.json: $app (process) offered at most TLS $v: $got" "$got" "^${v//./\\.} pid=[0-9]+ "
done
got=$(jq -r '.recent_failures[0] | "\(.app) \(.host) \(.reason) \(.fix)"' <<<"$json")
expect "census.json: the failure: $(cut -c1-80 <<<"$got")…" "$got" '^curl untrusted\.takap\.dev unknown_authority .*ca_files'
got=$(jq -r '"\(.apps_need_tls10) \(.apps_need_tls11) \(.apps_failing)"' <<<"$json")
expect "census.json: apps_need_tls10, apps_need_tls11, apps_failing = $got" "$got" '^2 1 1$'
csv=$(curl -sS "$ADMIN/census.csv")
expect "census.csv: a row per app and host ($(($(wc -l <<<"$csv") - 1)) rows)" "$csv" '^curl,process,[0-9]+,.*,untrusted\.takap\.dev,443,'

# tlsbridge census prints the same table from the admin endpoint.
out=$("$TLSBRIDGE" census -config "$WORK/config.toml" 2>&1) || true
printf '%s\n' "$out" >"$OUT/census.txt"
expect "tlsbridge census: headline and python3's row" "$out" '2 apps still need TLS 1\.0, 1 TLS 1\.1; 1 failing'
expect "tlsbridge census: the failure's fix" "$out" 'fix: .*ca_files'

expect_origin_modern 5

ex_finish
