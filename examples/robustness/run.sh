#!/usr/bin/env bash
# robustness: garbage, malformed CONNECT lines and silent clients against
# the proxy port, then the seed scenario still works, then 200 concurrent
# TLS 1.0 clients. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init robustness
need nginx nginx
need curl curl
need openssl openssl
PY=$(python_with_requests) || skip python3-requests python3-requests
need_tlsbridge

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"
BODY='\{ "test": "proxy-test" \}'
# An app that sends nothing must be closed within this many seconds: the
# proxy's handshake timeout (10 s by default) plus scheduling slack.
SILENT_BOUND=15
# Concurrency of the 200-request burst: 50 curls at a time is what 2 cores
# sustain without the clients themselves timing out.
BURST=200
PARALLEL=50

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT"
start_tlsbridge "$WORK/config.toml"
CA="$WORK/tlsbridge-ca.pem"
PROXY_PID=$(<"$WORK/tlsbridge.pid")
fds() { find "/proc/$PROXY_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
FDS_BEFORE=$(fds)

# raw FILE: send FILE's bytes to the proxy port, print the first line of the
# reply (hex if it is not text; nothing if the proxy just closed). Exit 124
# if it hangs.
raw() {
	local rc=0
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 15 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; cat "$2" >&3 2>/dev/null; head -c 100 <&3 2>/dev/null' \
		_ "$PROXY_PORT" "$1" >"$1.reply" || rc=$?
	if ((rc == 124)); then
		return 124
	elif LC_ALL=C grep -aq '^HTTP/' "$1.reply"; then
		head -n 1 "$1.reply" | tr -d '\r'
	elif [[ -s $1.reply ]]; then
		echo "non-HTTP reply: $(head -c 7 "$1.reply" | od -An -tx1 | tr -s ' ' | sed 's/^ //')"
	fi
}

# silent NAME PAYLOAD: connect, send PAYLOAD (printf %b), then wait for the
# proxy to close; writes "<rc> <seconds>" to $WORK/NAME.silent.
silent() {
	local t0=$EPOCHREALTIME rc=0
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 30 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "%b" "$2" >&3; cat <&3 >/dev/null' _ "$PROXY_PORT" "$2" || rc=$?
	echo "$rc $(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')" >"$WORK/$1.silent"
}

# 1. Silent clients, in the background while the rest runs.
silent idle "" &
SILENT1=$!
silent idle-after-connect "CONNECT $ORIGIN_HOST:443 HTTP/1.1\r\nHost: $ORIGIN_HOST:443\r\n\r\n" &
SILENT2=$!
# A Java 6 style SSLv2-format ClientHello (80 22 01 03 01 ...: TLS 1.0 in an
# SSLv2 record) after the CONNECT: it cannot be served, and the proxy should
# say so in its log rather than wait for a TLS ClientHello.
SSLV2_HELLO='\x80\x22\x01\x03\x01\x00\x09\x00\x00\x00\x10\x00\x00\x2f\x00\x00\x35\x00\x00\xff0123456789abcdef'
silent sslv2-hello "CONNECT $ORIGIN_HOST:443 HTTP/1.1\r\nHost: $ORIGIN_HOST:443\r\n\r\n$SSLV2_HELLO" &
SILENT3=$!

# 2. 64 KiB of random bytes, plain and behind a TLS handshake record header.
head -c 65536 /dev/urandom >"$WORK/random.bin"
{ printf '\x16\x03\x01\xff\xff'; cat "$WORK/random.bin"; } >"$WORK/tls-random.bin"
for f in random tls-random; do
	rc=0
	reply=$(raw "$WORK/$f.bin") || rc=$?
	if ((rc == 124)); then
		fail "64 KiB of $f bytes to the proxy port: the connection hung for 15 s"
	elif grep -q '^HTTP/1\.[01] 2' <<<"$reply"; then
		fail "64 KiB of $f bytes to the proxy port: got a success reply" "$reply"
	else
		pass "64 KiB of $f bytes to the proxy port: refused and closed (${reply:-closed without a reply})"
	fi
done

# 3. Malformed CONNECT requests: LABEL|BYTES (printf %b).
n=0
while IFS='|' read -r label bytes; do
	n=$((n + 1))
	printf '%b' "$bytes" >"$WORK/connect-$n.txt"
	rc=0
	reply=$(raw "$WORK/connect-$n.txt") || rc=$?
	if ((rc == 124)); then
		fail "malformed CONNECT ($label): no reply and not closed within 15 s"
	elif [[ -z $reply ]] || grep -Eq '^HTTP/1\.[01] [45][0-9][0-9]' <<<"$reply"; then
		pass "malformed CONNECT ($label): ${reply:-closed without a reply}"
	else
		fail "malformed CONNECT ($label): want a 4xx/5xx reply or a close" "$reply"
	fi
done <<'EOF'
no target: CONNECT|CONNECT\r\n\r\n
no port: CONNECT nginx.takap.dev HTTP/1.1|CONNECT nginx.takap.dev HTTP/1.1\r\nHost: nginx.takap.dev\r\n\r\n
port out of range: CONNECT nginx.takap.dev:99999|CONNECT nginx.takap.dev:99999 HTTP/1.1\r\nHost: nginx.takap.dev:99999\r\n\r\n
broken IPv6 literal: CONNECT [::1|CONNECT [::1 HTTP/1.1\r\n\r\n
unknown version: CONNECT nginx.takap.dev:443 HTTP/9.9|CONNECT nginx.takap.dev:443 HTTP/9.9\r\n\r\n
control bytes in Host, Content-Length: -1|CONNECT nginx.takap.dev:443 HTTP/1.1\r\nHost: \x01\x02\r\nContent-Length: -1\r\n\r\n
EOF

# 4. Wait for the silent clients.
wait "$SILENT1" "$SILENT2" "$SILENT3" || true
for name in idle idle-after-connect sslv2-hello; do
	read -r rc secs <"$WORK/$name.silent"
	case $name in
	idle) label="silent client (connects, sends nothing)" ;;
	idle-after-connect) label="silent client (sends a CONNECT, then no ClientHello)" ;;
	*) label="SSLv2-format ClientHello (Java 6 SSLv2Hello) after CONNECT" ;;
	esac
	if ((rc == 0)) && awk -v s="$secs" -v b="$SILENT_BOUND" 'BEGIN { exit !(s <= b) }'; then
		pass "$label: closed by the proxy after ${secs} s (bound ${SILENT_BOUND} s)"
	else
		fail "$label: want closed within ${SILENT_BOUND} s, got exit $rc after ${secs} s"
	fi
done

log=$(grep -Ei 'sslv2|ssl ?v?2|ssl 2' "$WORK/tlsbridge.log" || true)
if [[ -n $log ]]; then
	pass "SSLv2-format ClientHello: tlsbridge's log explains it: $(head -n 1 <<<"$log" | grep -Eio '[a-z_]+="[^"]*(sslv2|ssl ?v?2)[^"]*"' | head -n 1 | cut -c1-200)"
else
	fail "SSLv2-format ClientHello: want a log line that names SSLv2 (see the README's troubleshooting), got" \
		"$(grep -v 'msg=access' "$WORK/tlsbridge.log" | grep -v listening | tail -n 3)"
fi

if running tlsbridge; then
	pass "tlsbridge still running after the garbage"
else
	fail "tlsbridge died"
fi

# 5. The seed scenario still passes: the TLS-1.0 requests app, and curl.
rc=0
out=$(HTTPS_PROXY="http://127.0.0.1:$PROXY_PORT" timeout "$CLIENT_TIMEOUT" \
	"$PY" "$EXAMPLES_DIR/legacy-python/app.py" "$URL" "$CA" 2>&1) || rc=$?
expect "after the garbage: python-requests TLSv1 DEFAULT:@SECLEVEL=0 app still gets $out" "$out" '^\{"test": "proxy-test"\}$'
if curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" --tlsv1.0 --tls-max 1.0 \
	--ciphers 'DEFAULT:@SECLEVEL=0' "$URL" && grep -Eq "$BODY" <<<"$out"; then
	pass "after the garbage: curl --tlsv1.0 $(tls_summary "$out") still gets the JSON"
else
	fail "after the garbage: curl --tlsv1.0: want the JSON" "$out"
fi

# 6. 200 concurrent TLS 1.0 curl processes, PARALLEL at a time, alternating
# an ECDHE-ECDSA and an RSA-key-exchange client (both leaf key types).
t0=$SECONDS
# shellcheck disable=SC2016 # expanded by the inner bash
seq "$BURST" | xargs -P "$PARALLEL" -I{} bash -c '
	if (($1 % 2)); then c="AES128-SHA:@SECLEVEL=0"; else c="DEFAULT:@SECLEVEL=0"; fi
	out=$(timeout 60 curl -sS --max-time 60 --proxy "http://127.0.0.1:$2" --cacert "$3" \
		--tlsv1.0 --tls-max 1.0 --ciphers "$c" -w " code=%{http_code}" "$4" 2>&1) || true
	echo "$1 $(tr "\n" " " <<<"$out")"' _ {} "$PROXY_PORT" "$CA" "$URL" >"$WORK/burst.txt" 2>&1 || true
ok=$(grep -c '"test": "proxy-test" .*code=200' "$WORK/burst.txt" || true)
if ((ok == BURST)); then
	pass "$BURST concurrent curl --tlsv1.0 (DEFAULT:@SECLEVEL=0 and AES128-SHA:@SECLEVEL=0), $PARALLEL at a time: $ok/$BURST got the JSON in $((SECONDS - t0)) s"
else
	fail "$BURST concurrent curl --tlsv1.0: $ok/$BURST got the JSON" "$(grep -v 'code=200' "$WORK/burst.txt" | head -n 5)"
fi
n=$(grep 'msg=access' "$WORK/tlsbridge.log" | grep -c 'client_tls=TLS1.0 .*status=200' || true)
expect "tlsbridge access log: $n TLS 1.0 requests answered 200 (>= $BURST)" "$n" "^([2-9][0-9]{2}|[0-9]{4,})$"

# 7. No connections leaked: the proxy's open files return to where they were
# once the idle upstream connections kept for reuse expire (4 s idle; the
# pool is swept every second).
for _ in $(seq 20); do
	FDS_AFTER=$(fds)
	((FDS_AFTER <= FDS_BEFORE + 20)) && break
	sleep 0.5
done
if ((FDS_AFTER <= FDS_BEFORE + 20)); then
	pass "tlsbridge open files: $FDS_BEFORE before, $FDS_AFTER after $((BURST + 12)) connections (no leak)"
else
	fail "tlsbridge open files: $FDS_BEFORE before, $FDS_AFTER after: connections leaked"
fi

ex_finish
