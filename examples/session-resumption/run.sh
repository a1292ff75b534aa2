#!/usr/bin/env bash
# session-resumption: legacy apps that resume their TLS session with
# tlsbridge instead of paying a full handshake (an RSA decryption) per
# connection. Windows XP's SChannel, Java 6 and many embedded stacks resume
# only by session ID; OpenSSL's s_client plays them here (-no_ticket), and
# then a ticket-resuming app. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init session-resumption
need nginx nginx
need openssl openssl
need curl curl
need_tlsbridge
TLSBRIDGE_OPENSSL=${TLSBRIDGE_OPENSSL:-$REPO_DIR/bin/tlsbridge-openssl}
[[ -x $TLSBRIDGE_OPENSSL ]] || die "$TLSBRIDGE_OPENSSL not found: run 'make build-openssl' (make test does)"

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" "ADMIN_PORT=$ADMIN_PORT"

# s_client_app OUTVAR ARGS...: an XP-like TLS 1.0 app, RSA key exchange,
# through the proxy, verifying tlsbridge's CA, sending one GET.
s_client_app() {
	local __out=$1 __res
	shift
	__res=$(printf 'GET /index.json HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$ORIGIN_HOST" |
		timeout "$CLIENT_TIMEOUT" openssl s_client -proxy "127.0.0.1:$PROXY_PORT" -connect "$ORIGIN_HOST:443" \
			-servername "$ORIGIN_HOST" -tls1 -cipher 'AES128-SHA:@SECLEVEL=0' \
			-CAfile "$WORK/tlsbridge-ca.pem" -verify_return_error -ign_eof "$@" 2>&1) || true
	printf -v "$__out" '%s' "$__res"
}

# second_of S_CLIENT_ARGS...: a first connection saves its session, the
# second offers it; prints the second's "Reused, ..." or "New, ..." line.
second_of() {
	local out
	rm -f "$WORK/sess.pem"
	s_client_app out "$@" -sess_out "$WORK/sess.pem"
	grep -q '"test": "proxy-test"' <<<"$out" || { echo "first connection failed: $out"; return; }
	# s_client writes no file for a session it cannot resume (no ID, no ticket).
	[[ -s $WORK/sess.pem ]] || { grep -Eo '^New, [^ ]+, Cipher is [^ ]+' <<<"$out" | sed 's/$/ (no session ID, no ticket: nothing to resume)/'; return; }
	s_client_app out "$@" -sess_in "$WORK/sess.pem"
	grep -q '"test": "proxy-test"' <<<"$out" || { echo "second connection failed: $out"; return; }
	grep -Eo '^(New|Reused), [^ ]+, Cipher is [^ ]+' <<<"$out" | head -n 1
}

# The static build: crypto/tls resumes tickets, never a session ID.
start_tlsbridge "$WORK/config.toml"
r=$(second_of -no_ticket)
expect "static build, session ID only (-no_ticket): not resumed (crypto/tls has no session-ID cache)" "$r" '^New, '
r=$(second_of)
expect "static build, ticket: resumed" "$r" '^Reused, '
expect "static build, ticket: its access line says client_resumed=true" "$(grep 'msg=access' "$WORK/tlsbridge.log" | tail -n 1)" 'client_resumed=true'
stop tlsbridge

# The legacy engine (make build-openssl): both.
start tlsbridge-openssl "$TLSBRIDGE_OPENSSL" run -config "$WORK/config.toml" -ca-dir "$WORK/ca"
wait_port tlsbridge-openssl "$PROXY_PORT"
LOG=$WORK/tlsbridge-openssl.log

s_client_app out -no_ticket -sess_out "$WORK/id.pem"
expect "openssl engine, first connection: a full handshake that hands out a session ID" "$out" '^ *Session-ID: [0-9A-F]{64}'
expect "openssl engine, its access line: client_resumed=false" "$(grep 'msg=access' "$LOG" | tail -n 1)" 'client_resumed=false'
s_client_app out -no_ticket -sess_in "$WORK/id.pem"
expect "openssl engine, session ID only (-no_ticket, as XP and Java 6): the second connection is Reused" "$out" '^Reused, .*Cipher is AES128-SHA'
expect "openssl engine, its access line: client_resumed=true" "$(grep 'msg=access' "$LOG" | tail -n 1)" 'client_resumed=true'

r=$(second_of)
expect "openssl engine, ticket: resumed" "$r" '^Reused, '
expect "openssl engine, ticket: its access line says client_resumed=true" "$(grep 'msg=access' "$LOG" | tail -n 1)" 'client_resumed=true'
s_client_app out -sess_out "$WORK/t.pem"
expect "openssl engine, the ticket's lifetime hint is the session lifetime (3600 s), not 0" "$out" 'lifetime hint: 3600 \(seconds\)'

# A session is bound to the CA and the leaf name it was made under: offered
# for another host (a wildcard rule would bump it), it is not resumed.
metrics=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics")
expect "metrics: resumed handshakes of the legacy engine counted" "$metrics" \
	'^tlsbridge_app_handshakes_total\{engine="openssl",resumed="true"\} [2-9]'

# [limits] applied by SIGHUP: session_cache_size = 1 keeps only the newest
# session; session_lifetime "10m" gives new tickets a 600 s hint; "0s"
# turns resumption off, by session ID and by ticket.
cp "$WORK/config.toml" "$WORK/config.toml.orig"
reload_limits() {
	local n
	n=$(grep -c 'config reloaded' "$LOG" || true)
	{ cat "$WORK/config.toml.orig" && printf '\n[limits]\n%s\n' "$1"; } >"$WORK/config.toml"
	kill -HUP "$(<"$WORK/tlsbridge-openssl.pid")"
	for ((i = 0; i < 50; i++)); do
		(($(grep -c 'config reloaded' "$LOG" || true) > n)) && return
		sleep 0.1
	done
	fail "SIGHUP with $1: no 'config reloaded' line" "$(tail -n 5 "$LOG")"
}
reload_limits 'session_cache_size = 1'
s_client_app out -no_ticket -sess_out "$WORK/a.pem"
s_client_app out -no_ticket -sess_out "$WORK/b.pem"
s_client_app out -no_ticket -sess_in "$WORK/b.pem"
expect "session_cache_size = 1 (SIGHUP): the newest session resumes" "$out" '^Reused, '
s_client_app out -no_ticket -sess_in "$WORK/a.pem"
expect "session_cache_size = 1: the one before it was dropped for room" "$out" '^New, '
metrics=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics")
expect "metrics: the cache holds 1 session" "$metrics" '^tlsbridge_legacy_sessions 1$'
expect "metrics: sessions dropped for room counted" "$metrics" '^tlsbridge_legacy_session_evictions_total [1-9]'
reload_limits 'session_lifetime = "10m"'
s_client_app out -sess_out "$WORK/t10.pem"
expect "session_lifetime = \"10m\" (SIGHUP): new tickets hint 600 s" "$out" 'lifetime hint: 600 \(seconds\)'
s_client_app out -no_ticket -sess_out "$WORK/id10.pem"
expect "session_lifetime = \"10m\": a session ID to offer after the next reload" "$out" '^ *Session-ID: [0-9A-F]{64}'
reload_limits 'session_lifetime = "0s"'
s_client_app out -no_ticket -sess_in "$WORK/id10.pem"
expect "session_lifetime = \"0s\": a session ID cached before the reload no longer resumes" "$out" '^New, '
s_client_app out -sess_in "$WORK/t10.pem"
expect "session_lifetime = \"0s\": a ticket sealed before the reload no longer resumes" "$out" '^New, '
r=$(second_of -no_ticket)
expect "session_lifetime = \"0s\" (SIGHUP): no session ID handed out, nothing to resume" "$r" '^New, .*nothing to resume'
r=$(second_of)
expect "session_lifetime = \"0s\": no ticket either" "$r" '^New, .*nothing to resume'

expect_origin_modern 4
ex_finish
