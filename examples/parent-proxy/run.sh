#!/usr/bin/env bash
# parent-proxy: tlsbridge behind a corporate proxy. A real squid is the
# host's only way out (it alone resolves origin.internal, the name the
# rules dial); tlsbridge bumps a TLS 1.0 app, tunnels a modern one and
# forwards plain http:// through it, with and without Basic
# authentication, and every refusal is a 502/504 naming the fix. See
# README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init parent-proxy
need nginx nginx
need squid squid
need curl curl
need openssl openssl
need_tlsbridge
[[ -x /usr/lib/squid/basic_ncsa_auth ]] || skip /usr/lib/squid/basic_ncsa_auth squid

NGINX_PORT=$(free_port)
PLAIN_PORT=$(free_port)
PROXY_PORT=$(free_port)
SQUID_PORT=$(free_port)
SQUID_AUTH_PORT=$(free_port)
CA="$WORK/tlsbridge-ca.pem"

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT" "PLAIN_PORT=$PLAIN_PORT"

# start_squid NAME PORT AUTH: squid -N in $WORK/NAME. Started as root,
# squid runs as the proxy user, which must reach its files.
start_squid() {
	local name=$1 port=$2 auth=$3 dir="$WORK/$1" user="" authcfg="" authed=""
	mkdir -p "$dir"
	echo "127.0.0.1 origin.internal plain.internal" >"$dir/hosts"
	if [[ $auth == yes ]]; then
		# basic_ncsa_auth reads crypt(3) hashes; MD5-crypt from openssl.
		echo "alice:$(openssl passwd -1 's3cret-pw')" >"$dir/passwd"
		authcfg="auth_param basic program /usr/lib/squid/basic_ncsa_auth $dir/passwd
auth_param basic realm corp
acl authed proxy_auth REQUIRED"
		authed=authed
	fi
	if ((EUID == 0)); then
		user="cache_effective_user proxy"
		chmod 711 "$WORK"
		chown -R proxy "$dir"
	fi
	render "$EX_DIR/squid.conf" "$dir/squid.conf" "PORT=$port" "SQUID_DIR=$dir" "USER=$user" "AUTHED=$authed" "AUTH=${authcfg//$'\n'/\\n}" ||
		die "render squid.conf"
	start "$name" squid -N -f "$dir/squid.conf"
	wait_port "$name" "$port"
}
start_squid squid "$SQUID_PORT" no
start_squid squid-auth "$SQUID_AUTH_PORT" yes

printf 'alice:s3cret-pw\n' >"$WORK/proxy-auth"
printf 'alice:not-the-password\n' >"$WORK/proxy-auth-wrong"
chmod 600 "$WORK/proxy-auth" "$WORK/proxy-auth-wrong"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" \
	"PLAIN_PORT=$PLAIN_PORT" "SQUID_PORT=$SQUID_PORT" "SQUID_AUTH_PORT=$SQUID_AUTH_PORT"
start_tlsbridge "$WORK/config.toml"

# legacy URL: curl as a TLS 1.0 app through tlsbridge, trusting only its CA.
legacy() {
	curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" \
		--tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" "$@" || true
}

legacy "https://nginx.takap.dev/index.json"
expect "TLS 1.0 app, bumped through squid: the origin's JSON ($(tls_summary "$out") to tlsbridge)" "$out" '"test": "proxy-test"'
expect "nginx saw TLS 1.2+ from squid's tunnel" "$(tail -n 1 "$WORK/nginx/logs/access.log")" ' 200 TLSv1\.[23] '

curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$WORK/nginx-ca.pem" --tlsv1.2 \
	"https://tunnel.takap.dev/index.json" || true
expect "modern app, tunnelled untouched through tlsbridge and squid: nginx's own certificate, verified" "$out" '"test": "proxy-test"'
# squid logs a CONNECT when it ends (the bumped one stays pooled in tlsbridge).
for ((i = 0; i < 20; i++)); do
	grep -q "CONNECT origin.internal:$NGINX_PORT" "$WORK/squid/access.log" && break
	sleep 0.1
done
expect "squid's access log: tlsbridge's CONNECT to origin.internal:$NGINX_PORT (a name only squid resolves)" \
	"$(cat "$WORK/squid/access.log")" "TCP_TUNNEL/200 .* CONNECT origin.internal:$NGINX_PORT"

curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" "http://plain.internal:$PLAIN_PORT/plain.txt" || true
expect "plain http:// forwarded to squid (absolute-form), which alone resolves plain.internal" "$out" 'plain origin behind the parent'

legacy "https://auth.takap.dev/index.json"
expect "squid with Basic auth: proxy_auth_file's credentials accepted" "$out" '"test": "proxy-test"'
# An https:// URL sent to the proxy port as a plain request (no CONNECT;
# --request-target): the same dial as a CONNECT, a tunnel through squid
# with the credentials and tlsbridge's verified TLS inside it.
curl_tls out --request-target "https://auth.takap.dev/index.json" "http://127.0.0.1:$PROXY_PORT/" || true
expect "plain GET https:// on the proxy port: through squid with Basic auth, like a CONNECT" "$out" '"test": "proxy-test"'
expect "  ... nginx saw tlsbridge's TLS 1.2+ with the rule's server_name" "$(tail -n 1 "$WORK/nginx/logs/access.log")" ' 200 TLSv1\.[23] .*sni=nginx\.takap\.dev'
legacy "https://noauth.takap.dev/index.json"
expect "squid with Basic auth, no credentials: 502 naming proxy_auth_file" "$out" 'refused the CONNECT to origin.internal:[0-9]+ with 407: it requires credentials'
# shellcheck disable=SC2016 # the backquotes are the hint's own text
expect "  ... and the fix names the key where it goes" "$out" 'set `proxy_auth_file = "proxy-auth.txt"` in \[rule.upstream\] of rule\[3\]'
legacy "https://wrongauth.takap.dev/index.json"
expect "squid with Basic auth, wrong password: 502 naming the credentials file" "$out" "does not accept the credentials in $WORK/proxy-auth-wrong"
if grep -q 's3cret-pw\|not-the-password' "$WORK/tlsbridge.log"; then
	fail "tlsbridge's log carries a parent password"
else
	pass "no parent password in tlsbridge's log"
fi
legacy "https://blocked.takap.dev/index.json"
expect "squid's ACL refuses the destination: 502 with its 403 and the fix" "$out" 'with 403: its access rules'
legacy "https://direct.takap.dev/index.json"
expect "proxy = \"direct\": origin.internal does not resolve without the parent (502)" "$out" 'could not resolve the host name "origin.internal"'
legacy "https://self.takap.dev/index.json"
expect "a parent that is tlsbridge itself: 508, no loop" "$out" "HTTP/1.1 508"
expect "  ... naming the loop" "$out" "is tlsbridge's own listener; going through it would loop"

out=$("$TLSBRIDGE" check -config "$WORK/config.toml" nginx.takap.dev 2>&1 || true)
expect "tlsbridge check goes through the parent" "$out" "parent +through http://127.0.0.1:$SQUID_PORT \(HTTP CONNECT\), without credentials"
expect "  ... and says a TLS 1.0 app would succeed" "$out" 'would be bumped and succeed'
out=$("$TLSBRIDGE" check -config "$WORK/config.toml" noauth.takap.dev 2>&1 || true)
# shellcheck disable=SC2016 # the backquotes are the hint's own text
expect "tlsbridge check through squid without credentials names the fix" "$out" 'fix: .*set `proxy_auth_file = '

# Added latency of the parent on a new upstream connection: tunnels are
# never pooled, so each request below is TCP + CONNECT (+ squid's CONNECT)
# + a TLS 1.3 handshake with nginx. Median of 20 each way.
median_ms() {
	local host=$1 i
	for ((i = 0; i < 20; i++)); do
		curl -s -o /dev/null -w '%{time_total}\n' --proxy "http://127.0.0.1:$PROXY_PORT" \
			--cacert "$WORK/nginx-ca.pem" --tlsv1.2 "https://$host/index.json"
	done | sort -n | sed -n 10p | awk '{printf "%.1f", $1 * 1000}'
}
direct=$(median_ms tunnel-direct.takap.dev)
parent=$(median_ms tunnel.takap.dev)
if [[ -n $direct && -n $parent ]]; then
	pass "new connection, median of 20 (curl time_total): direct ${direct} ms, through squid ${parent} ms"
else
	fail "latency measurement" "direct=$direct parent=$parent"
fi

ex_finish
