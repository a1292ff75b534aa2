#!/usr/bin/env bash
# http-intermediary: for bumped HTTP/1.x, tlsbridge is the HTTP/1.1
# intermediary between a TLS 1.0 app and a TLS 1.2+ nginx: one strict
# parser (smuggling and ambiguous framings refused with its own 400),
# upstream connections pooled across app connections, one access line per
# request; WebSocket, a 100 MiB chunked upload, body-less responses,
# pipelining and HTTP/1.0 still work. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init http-intermediary
need nginx nginx
need curl curl
need openssl openssl
need python3 python3
need jq jq
need_tlsbridge
# Debian's python3 first: a pyenv shim earlier on PATH costs a shell per run.
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
BACKEND_PORT=$(free_port)
# 200 fresh app connections, each "Connection: close", must reach nginx over
# at most this many upstream connections: tlsbridge pools them.
ONESHOTS=200
MAX_UPSTREAM=5
UPLOAD_MIB=100

make_origin_certs "$WORK"
# Distinct bodies: a response that comes back for the wrong request shows.
# nginx's workers may run as another user (nobody, when started as root):
# they need to traverse the temp dir and read www/.
mkdir -p "$WORK/www"
chmod 711 "$WORK"
chmod 755 "$WORK/www"
echo "index page" >"$WORK/www/index.html"
echo "victim page: only for the victim" >"$WORK/www/victim.html"
echo "EVIL page: smuggled by the attacker" >"$WORK/www/evil.html"
echo "page one" >"$WORK/www/one.html"
echo "page two" >"$WORK/www/two.html"

start backend "$PY" "$EX_DIR/backend.py" "$BACKEND_PORT"
wait_port backend "$BACKEND_PORT"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT" "BACKEND_PORT=$BACKEND_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT"
start_tlsbridge "$WORK/config.toml"
CA="$WORK/tlsbridge-ca.pem"
NGINX_LOG="$WORK/nginx/logs/access.log"
TB_LOG="$WORK/tlsbridge.log"

# app ARGS...: the TLS 1.0 raw-socket app (app.py); prints JSON. Bounded:
# every socket times out after 20 s, the whole command after 90 s. With
# TIMING=1, each run's duration goes to stderr.
app() {
	local t0=$EPOCHREALTIME
	timeout 90 "$PY" "$EX_DIR/app.py" --proxy-port "$PROXY_PORT" --ca "$CA" --host "$ORIGIN_HOST" "$@" ||
		echo '{"error": "app.py exited with status '"$?"'"}'
	[[ -z ${TIMING:-} ]] || awk -v a="$EPOCHREALTIME" -v b="$t0" -v c="$1" 'BEGIN { printf "app %s: %.2f s\n", c, a - b }' >&2
}
# jqr FILTER JSON: jq -r, "" on a jq error.
jqr() { jq -r "$1" <<<"$2" 2>/dev/null || true; }
# mark / since MARK: nginx access lines written after the mark.
mark() { wc -l <"$NGINX_LOG"; }
since() { tail -n "+$(($1 + 1))" "$NGINX_LOG"; }
# is_refusal JSON ALLOWED: the app got one of the ALLOWED statuses (a regexp)
# with a body from tlsbridge itself, and the proxy then closed.
is_refusal() {
	[[ $(jqr '.status' "$1") =~ ^($2)$ ]] &&
		[[ $(jqr '.body // ""' "$1") == tlsbridge:* ]] &&
		[[ $(jqr '.closed // ""' "$1") =~ ^(closed|reset) ]]
}
# short JSON: one line of what the app saw, for messages.
short() { jqr '"status=\(.status // "-") closed=\(.closed // .closed_after_first // "-") body=\((.body // "") | .[0:70] | @json)\(if .error then " error=" + .error else "" end)"' "$1"; }

# 1. Request smuggling: the attack (a bare LF hides a Content-Length from a
#    lax proxy), then a victim on a new app connection; and the same with a
#    well-formed first request (the attacker's second message alone).
for variant in bare-lf clean; do
	m=$(mark)
	out=$(app smuggle "$variant")
	r1=$(jq -c --arg c "$(jqr '.attacker.closed_after_first // ""' "$out")" '.attacker.responses[0] // {} | if $c == "" then . else . + {closed: $c} end' <<<"$out" 2>/dev/null || echo '{}')
	victim=$(jqr '.victim.body // ""' "$out")
	evil=$(since "$m" | grep -F '/evil.html' || true)
	if [[ $variant == bare-lf ]]; then
		if is_refusal "$r1" 400; then
			pass "smuggling: a bare LF in the attacker's head is refused by tlsbridge ($(short "$r1"))"
		else
			fail "smuggling: want the attacker's first request (bare LF before Content-Length) refused with tlsbridge's 400 and the connection closed, got $(short "$r1")" \
				"$(jq -c '.attacker' <<<"$out" 2>/dev/null | cut -c1-600)"
		fi
	else
		st=$(jqr '[.attacker.responses[] | .status // "-"] | join(",")' "$out")
		if [[ $st == 200,404 ]]; then
			pass "smuggling (well-formed first request): the attacker's two requests are answered 200,404 (the evil bytes are /t's body)"
		else
			fail "smuggling (well-formed first request): want the attacker's two requests answered 200,404, got $st" \
				"$(jq -c '.attacker' <<<"$out" 2>/dev/null | cut -c1-600)"
		fi
	fi
	if [[ -z $evil ]]; then
		pass "smuggling ($variant): nginx never received GET /evil.html"
	else
		fail "smuggling ($variant): nginx received the smuggled request" "$evil"
	fi
	if [[ $victim == "$(<"$WORK/www/victim.html")" ]]; then
		pass "smuggling ($variant): the next app connection gets /victim.html's own body"
	else
		fail "smuggling ($variant): the victim's GET /victim.html got $(jqr '.victim | "status=\(.status // "-") body=\((.body // .error // "") | @json)"' "$out")" \
			"$(since "$m")"
	fi
done

# 2. Ambiguous framings, one fresh app connection each, all at once: each
#    must get tlsbridge's own 400 (431 for the oversized head, 501 for an
#    unknown transfer coding are accepted too) and a close, and nginx must
#    never see its unique path.
m=$(mark)
cases=0
results=$(app framing bare-lf bare-cr obs-fold cl-and-te two-cl te-gzip space-before-colon ctl-in-value head-over-64k)
while read -r line; do
	cases=$((cases + 1))
	name=$(jqr '.case // "?"' "$line")
	path=$(jqr '.path // "?"' "$line")
	case $name in
	head-over-64k) allowed='400|431' ;;
	te-gzip) allowed='400|501' ;;
	*) allowed='400' ;;
	esac
	seen=$(since "$m" | grep -F "$path " || true)
	if is_refusal "$line" "$allowed" && [[ -z $seen ]]; then
		pass "framing $name: refused by tlsbridge ($(short "$line")), nginx never saw $path"
	else
		fail "framing $name: want tlsbridge's ${allowed//|/ or } and a close, and nothing at nginx; got $(short "$line")${seen:+; nginx logged: $seen}"
	fi
done < <(jq -c '.' <<<"$results" 2>/dev/null || echo '{"case":"framing","error":"app.py printed no JSON"}')
((cases >= 9)) || fail "framing: only $cases of the 9 cases reported" "$results"

# 2b. An invalid chunk size: the head may already be upstream when the body
#     turns out bad, so: the app gets a 400 or a close, the bytes after the
#     bad size never reach nginx as a request, and the upstream connection
#     that carried the head serves nothing afterwards (three follow-up app
#     connections, which would pick it from the pool if it were kept).
m=$(mark)
zz=$(app framing chunk-zz)
after=""
for i in 1 2 3; do
	after+=$(app keepalive "/echo/after-zz-$i")
done
zzline=$(since "$m" | grep -F '/body/c-chunk-zz ' || true)
zzconn=$(grep -Eo '^c=[0-9]+ ' <<<"$zzline" | head -n 1 || true)
later=""
if [[ -n $zzconn ]]; then
	later=$(since "$m" | grep -v -F '/body/c-chunk-zz ' | grep -E "^$zzconn" || true)
fi
smuggled=$(since "$m" | grep -F 'c-chunk-zz-smuggled' || true)
afterok=$(jq -s '[.[][] | select(.status == 200 and (.body | startswith("echo /echo/after-zz-")))] | length' <<<"$after" 2>/dev/null || echo 0)
zzst=$(jqr '.status // 0' "$zz")
if [[ $(jqr '.closed // ""' "$zz") =~ ^(closed|reset) ]] && [[ $zzst =~ ^(0|400)$ ]] &&
	[[ -z $smuggled && -z $later ]] && ((afterok == 3)); then
	pass "framing chunk-zz: app got $(short "$zz"); nothing after the bad chunk size reached nginx; its upstream connection (${zzconn:+nginx }${zzconn% }${zzconn:-none}) served nothing after; 3/3 follow-up requests fine"
else
	fail "framing chunk-zz: want a 400 or a close, no request from the bad bytes at nginx, the upstream connection never reused; got $(short "$zz"), follow-ups ok $afterok/3" \
		"$(since "$m")"
fi

# 3. Connection: close one-shots: every app connection is new and says
#    close; tlsbridge still keeps the upstream connection for the next one.
m=$(mark)
out=$(app oneshots "$ONESHOTS" /one.html "$WORK/www/one.html")
ok=$(jqr '.ok // 0' "$out")
if [[ $ok == "$ONESHOTS" ]]; then
	pass "$ONESHOTS sequential TLS 1.0 app connections with Connection: close: all got 200 and /one.html's body ($(jqr '.seconds' "$out") s)"
else
	fail "$ONESHOTS sequential Connection: close app connections: $ok/$ONESHOTS got /one.html" "$(jq -c '.failures[]?' <<<"$out" 2>/dev/null | head -n 3)"
fi
lines=$(since "$m" | grep -F 'GET /one.html?oneshot=' || true)
n=$(grep -c . <<<"$lines" || true)
conns=$(grep -Eo '^c=[0-9]+' <<<"$lines" | sort -u | grep -c . || true)
if ((n == ONESHOTS && conns <= MAX_UPSTREAM)); then
	pass "nginx saw the $n one-shot requests on $conns upstream connection(s) (at most $MAX_UPSTREAM: pooled across app connections)"
else
	fail "nginx saw $n/$ONESHOTS one-shot requests on $conns upstream connections (want at most $MAX_UPSTREAM)" \
		"$(head -n 3 <<<"$lines")"
fi

# 4. WebSocket through the bump: 101, the accept key, one echoed frame.
out=$(app ws)
if [[ $(jqr '.status' "$out") == 101 && $(jqr '.accept_ok' "$out") == true &&
	$(jqr '.echo' "$out") == "$(jqr '.sent' "$out")" ]]; then
	pass "WebSocket: 101 with the right Sec-WebSocket-Accept, masked text frame echoed: $(jqr '.echo' "$out")"
else
	fail "WebSocket: want 101, a valid accept key and the frame echoed" "$out"
fi

# 5. A 100 MiB chunked upload by curl at TLS 1.0: the backend behind nginx
#    counts and hashes exactly what arrived.
head -c "$((UPLOAD_MIB << 20))" /dev/urandom >"$WORK/upload.bin"
want_sum=$(sha256sum "$WORK/upload.bin" | cut -d' ' -f1)
t0=$EPOCHREALTIME
rc=0
got=$(timeout 60 curl -sS --max-time 60 --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" \
	--tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" -H 'Transfer-Encoding: chunked' \
	--data-binary @"$WORK/upload.bin" "https://$ORIGIN_HOST/upload" 2>&1) || rc=$?
secs=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
rm -f "$WORK/upload.bin"
if ((rc == 0)) && [[ $(jqr '.bytes' "$got") == "$((UPLOAD_MIB << 20))" && $(jqr '.sha256' "$got") == "$want_sum" ]]; then
	pass "$UPLOAD_MIB MiB chunked upload (curl --tlsv1.0): the origin received exactly the bytes (sha256 ${want_sum:0:16}…, $secs s)"
else
	fail "$UPLOAD_MIB MiB chunked upload: want {\"bytes\": $((UPLOAD_MIB << 20)), \"sha256\": \"$want_sum\"} (curl exit $rc)" "$got"
fi

# 6. Body-less responses, each followed by a GET on the same connection.
for kind in head 204 304; do
	out=$(app bodyless "$kind")
	st=$(jqr '[.[] | .status // .error // "-"] | map(tostring) | join(",")' "$out")
	case $kind in
	head) want='200,200' label='HEAD /one.html' ;;
	204) want='204,200' label='GET /no-content (204)' ;;
	*) want='200,304,200' label='GET /one.html with If-None-Match (304)' ;;
	esac
	last=$(jqr '.[-1].body // ""' "$out")
	firstbody=$(jqr '[.[] | select(.status == 204 or .status == 304 or (.request | startswith("HEAD")))][0].body // ""' "$out")
	if [[ $st == "$want" && $last == "$(<"$WORK/www/two.html")" && -z $firstbody ]]; then
		pass "$label, then GET /two.html on the same connection: $st, the GET got its body"
	else
		fail "$label, then GET /two.html on the same connection: want $want and \"page two\", got $st" "$out"
	fi
done

# 7. Three pipelined GETs in one send: three responses, in order.
out=$(app pipeline /echo/pipe-1 /echo/pipe-2 /echo/pipe-3)
bodies=$(jqr '[.[] | .body // .error // "-" | rtrimstr("\n")] | join(" | ")' "$out")
if [[ $bodies == "echo /echo/pipe-1 | echo /echo/pipe-2 | echo /echo/pipe-3" ]]; then
	pass "3 pipelined GETs in one send: 3 responses in order ($bodies)"
else
	fail "3 pipelined GETs: want echo /echo/pipe-1..3 in order, got $bodies" "$out"
fi

# 8. An HTTP/1.0 app without Host: answered, then closed by the proxy.
out=$(app http10 /one.html)
if [[ $(jqr '.status' "$out") == 200 && $(jqr '.body' "$out") == "$(<"$WORK/www/one.html")" &&
	$(jqr '.closed' "$out") =~ ^(closed|reset) ]]; then
	pass "HTTP/1.0 app (GET /one.html HTTP/1.0, no Host): $(jqr '.version' "$out") 200, the body, then closed by the proxy"
else
	fail "HTTP/1.0 app: want 200, /one.html's body and a close" "$out"
fi

# 9. One access line per request: a keep-alive connection with 3 GETs.
out=$(app keepalive /echo/log-1 /echo/log-2 /echo/log-3)
sleep 0.3
missing=()
for i in 1 2 3; do
	grep 'msg=access' "$TB_LOG" | grep -F " path=/echo/log-$i " | grep -F ' method=GET ' | grep -Eq ' status=200( |$)' ||
		missing+=("/echo/log-$i")
done
acc=$(grep 'msg=access' "$TB_LOG" | grep -F 'path=/echo/log-' || true)
n=$(grep -c . <<<"$acc" || true)
if ((${#missing[@]} == 0 && n == 3)); then
	reused=$(grep -Eo 'upstream_reused=[a-z]+' <<<"$acc" | paste -sd, - || true)
	pass "tlsbridge access log: 3 lines for the 3 requests of one keep-alive connection, each with method, path, status${reused:+ ($reused)}"
else
	fail "tlsbridge access log: want one line per request with method=GET path=/echo/log-N status=200; $n line(s), missing ${missing[*]:-none}" \
		"$(grep 'msg=access' "$TB_LOG" | tail -n 2)"
fi

if running tlsbridge; then
	pass "tlsbridge still running"
else
	fail "tlsbridge died"
fi

ex_finish
