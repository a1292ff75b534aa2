#!/usr/bin/env bash
# hostile: what an attacker on the proxy port tries. tlsbridge's own ports
# through the proxy (508), a wrong-password flood beside a legitimate app,
# and testssl-style 3DES probes. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init hostile
need nginx nginx
need curl curl
need openssl openssl
need python3 python3
need_tlsbridge

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
LISTENER_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"
BODY='\{ "test": "proxy-test" \}'
USER_NAME=alice
PASSWORD=s3cret-example
PROXY="http://$USER_NAME:$PASSWORD@127.0.0.1:$PROXY_PORT"
PROBE=(python3 "$EX_DIR/probe.py")
# The flood: as many threads as issue 13's attacker, for this many seconds.
FLOOD_THREADS=64
FLOOD_SECONDS=4
# A legitimate request's p99 bound during the flood. Alone it takes
# ~20-40 ms here (curl start, two TLS handshakes), 80-180 ms during the
# flood; the bound leaves room for a 2-core machine busy with other builds
# (535 ms seen once so). Before the limit, it was 2.3 s.
LEGIT_P99_MS=1000

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" \
	"ADMIN_PORT=$ADMIN_PORT" "LISTENER_PORT=$LISTENER_PORT"
cp "$EX_DIR/users.htpasswd" "$WORK/users.htpasswd"
start_tlsbridge "$WORK/config.toml"
wait_port tlsbridge "$ADMIN_PORT"
wait_port tlsbridge "$LISTENER_PORT"
CA="$WORK/tlsbridge-ca.pem"

# legit: one TLS 1.0 app request with the right credentials; prints
# "<http code> <seconds>".
legit() {
	timeout "$CLIENT_TIMEOUT" curl -sS -o "$WORK/legit.body" --max-time "$CLIENT_TIMEOUT" \
		--proxy "$PROXY" --cacert "$CA" --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" \
		-w '%{http_code} %{time_total}\n' "$URL" 2>&1 || true
}

# 0. The legitimate app works (and its credentials are now remembered).
out=$(legit)
if [[ $out == "200 "* ]] && grep -Eq "$BODY" "$WORK/legit.body"; then
	pass "alice's TLS 1.0 app through the proxy: 200 with the JSON in $(awk '{ printf "%.0f", $2 * 1000 }' <<<"$out") ms"
else
	die "alice's TLS 1.0 app through the proxy: want 200 and the JSON" "$out"
fi
out=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/healthz" 2>&1 || true)
expect "admin port directly (not through the proxy): /healthz says ok" "$out" '^ok$'

# 1. tlsbridge's own ports through the proxy: CONNECT (curl -p) and a plain
# GET, each port in connect_ports, with valid credentials: 508, nothing served.
for spec in "admin:$ADMIN_PORT:/debug/pprof/cmdline" "admin:$ADMIN_PORT:/metrics" \
	"listener:$LISTENER_PORT:/" "proxy:$PROXY_PORT:/"; do
	IFS=: read -r name port path <<<"$spec"
	for host in 127.0.0.1 localhost; do
		out=$(timeout "$CLIENT_TIMEOUT" curl -sS -v -p --max-time 10 --proxy "$PROXY" \
			"http://$host:$port$path" 2>&1 || true)
		expect "CONNECT $host:$port ($name port) through the proxy: 508" "$out" \
			'(< HTTP/1\.1 508|CONNECT tunnel failed, response 508)'
		code=$(timeout "$CLIENT_TIMEOUT" curl -sS --max-time 10 --proxy "$PROXY" -o "$WORK/self.body" \
			-w '%{http_code}' "http://$host:$port$path" 2>&1 || true)
		if [[ $code == 508 ]] && ! grep -aq 'go_goroutines\|tlsbridge run\|debug/pprof' "$WORK/self.body"; then
			pass "GET http://$host:$port$path ($name port) through the proxy: 508, nothing of it served"
		else
			fail "GET http://$host:$port$path ($name port) through the proxy: want 508" "$code $(head -c 300 "$WORK/self.body")"
		fi
	done
done
code=$(curl -sS --max-time 10 --proxy "http://127.0.0.1:$PROXY_PORT" -o /dev/null -w '%{http_code}' \
	"http://127.0.0.1:$ADMIN_PORT/metrics" 2>&1 || true)
expect "GET the admin port through the proxy without credentials: 407 (authentication comes first)" "$code" '^407$'

# 2. A wrong-password flood from 127.0.0.2 with a legitimate app beside it
# (127.0.0.1, credentials already verified).
for _ in 1 2 3; do legit >>"$WORK/legit-before.txt"; done
"${PROBE[@]}" flood "$PROXY_PORT" "$FLOOD_SECONDS" "$FLOOD_THREADS" "$USER_NAME" >"$WORK/flood.out" 2>&1 &
FLOOD=$!
sleep 0.5 # the flood has started and is hitting bcrypt
while kill -0 "$FLOOD" 2>/dev/null; do
	legit >>"$WORK/legit-during.txt"
done
wait "$FLOOD" || true
flood=$(<"$WORK/flood.out")
# p50 and p99 (nearest rank) in ms of the second column of FILE.
pct() { awk '{ print $2 * 1000 }' "$1" | sort -n | awk -v p="$2" '{ v[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.0f", v[i] }'; }
n=$(wc -l <"$WORK/legit-during.txt")
ok=$(grep -c '^200 ' "$WORK/legit-during.txt" || true)
p50=$(pct "$WORK/legit-during.txt" 50)
p99=$(pct "$WORK/legit-during.txt" 99)
before=$(pct "$WORK/legit-before.txt" 50)
if [[ $flood =~ requests=([0-9]+) ]] && ! grep -q 'statuses=.*200:' <<<"$flood" && grep -q 'statuses=407:' <<<"$flood"; then
	pass "flood: $FLOOD_THREADS threads of wrong passwords from 127.0.0.2 for $FLOOD_SECONDS s: $flood"
else
	fail "flood: want only 407s" "$flood"
fi
if ((n >= 5 && ok == n)) && ((p99 <= LEGIT_P99_MS)); then
	pass "alice's app during the flood: $ok/$n requests 200, p50 $p50 ms, p99 $p99 ms (bound $LEGIT_P99_MS ms; p50 $before ms before the flood)"
else
	fail "alice's app during the flood: want at least 5 requests, all 200, p99 <= $LEGIT_P99_MS ms; got $ok/$n 200, p50 $p50 ms, p99 $p99 ms" \
		"$(sort -k2 -n "$WORK/legit-during.txt" | tail -n 5)"
fi
n=$(grep -c 'failed checks from 127.0.0.2' "$WORK/tlsbridge.log" || true)
line=$(grep -m 1 'failed checks from 127.0.0.2' "$WORK/tlsbridge.log" | grep -Eo 'msg="[^"]{0,120}' | cut -c6- || true)
expect "tlsbridge's log names the limited address once, not per request: $n line: $line" "$n" '^1$'
metrics=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>&1 | grep '^tlsbridge_auth_failures_total' || true)
bad=$(sed -n 's/^tlsbridge_auth_failures_total{result="bad"} //p' <<<"$metrics")
limited=$(sed -n 's/^tlsbridge_auth_failures_total{result="limited"} //p' <<<"$metrics")
if [[ $bad == 10 && ${limited:-0} =~ ^[0-9]+$ ]] && ((limited > 0)); then
	pass "metrics: tlsbridge_auth_failures_total bad=$bad (bcrypt ran for the first 10 only), limited=$limited (answered at once)"
else
	fail "metrics: want tlsbridge_auth_failures_total bad=10 and limited > 0" "$metrics"
fi

# 3. testssl-style cipher checks with raw ClientHellos (no TLS library, so
# they run whatever the local OpenSSL supports): 3DES only below TLS 1.2.
# hello LABEL VERSION SUITE WANT_REGEXP
hello() {
	local out
	out=$(timeout "$CLIENT_TIMEOUT" "${PROBE[@]}" hello "$PROXY_PORT" "$ORIGIN_HOST" "$2" "$3" "$USER_NAME" "$PASSWORD" 2>&1 || true)
	expect "raw ClientHello, TLS $2 offering only $1: $out" "$out" "$4"
}
hello "AES128-SHA (002f), control" 1.2 002f '^accepted 002f version=0303'
hello "ECDHE-RSA-AES128-SHA (c013), control" 1.2 c013 '^accepted c013 version=0303'
hello "DES-CBC3-SHA (000a)" 1.2 000a '^refused alert=40'
hello "ECDHE-RSA-DES-CBC3-SHA (c012)" 1.2 c012 '^refused alert=40'
hello "DES-CBC3-SHA (000a)" 1.1 000a '^accepted 000a version=0302'
hello "DES-CBC3-SHA (000a)" 1.0 000a '^accepted 000a version=0301'
hello "ECDHE-RSA-DES-CBC3-SHA (c012)" 1.0 c012 '^accepted c012 version=0301'

# The same with openssl s_client through the proxy, where OpenSSL has 3DES.
if openssl ciphers 'DES-CBC3-SHA:@SECLEVEL=0' >/dev/null 2>&1; then
	s_client() {
		timeout "$CLIENT_TIMEOUT" openssl s_client -proxy "127.0.0.1:$PROXY_PORT" \
			-proxy_user "$USER_NAME" -proxy_pass "pass:$PASSWORD" -connect "$ORIGIN_HOST:443" \
			-servername "$ORIGIN_HOST" -CAfile "$CA" "$@" </dev/null 2>&1 || true
	}
	out=$(s_client -tls1_2 -cipher 'DES-CBC3-SHA:@SECLEVEL=0')
	if grep -Eq 'Cipher is DES-CBC3-SHA|Cipher *: *DES-CBC3-SHA' <<<"$out"; then
		fail "openssl s_client -tls1_2 -cipher DES-CBC3-SHA through the proxy: want refused, got DES-CBC3-SHA" "$out"
	else
		pass "openssl s_client -tls1_2 -cipher DES-CBC3-SHA through the proxy: refused ($(grep -Eo 'alert [a-z ]+' <<<"$out" | head -n 1))"
	fi
	out=$(s_client -tls1 -cipher 'DES-CBC3-SHA:@SECLEVEL=0')
	expect "openssl s_client -tls1 -cipher 'DES-CBC3-SHA:@SECLEVEL=0' through the proxy: accepted" "$out" \
		'Cipher is DES-CBC3-SHA|Cipher *: *DES-CBC3-SHA'
else
	echo "SKIP $EX_NAME: (two checks) openssl s_client with DES-CBC3-SHA: $(openssl version) has no 3DES (built without weak ciphers); the raw ClientHellos above check the same"
fi

if running tlsbridge; then
	pass "tlsbridge still running"
else
	fail "tlsbridge died"
fi
ex_finish
