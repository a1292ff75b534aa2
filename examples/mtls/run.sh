#!/usr/bin/env bash
# mtls: a client certificate per upstream. nginx requires one from its own
# client CA (ssl_verify_client on); a legacy TLS 1.0 app that has none gets
# through because tlsbridge presents client.pem. A server that refuses in
# the handshake answers 502 naming client_cert; the certificate is renewed
# on disk and picked up on SIGHUP while an open connection keeps its own.
# See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init mtls
need nginx nginx
need curl curl
need openssl openssl
need python3 python3
need_tlsbridge

NGINX_PORT=$(free_port)
STRICT_PORT=$(free_port)
PROXY_PORT=$(free_port)
CA="$WORK/tlsbridge-ca.pem"

make_origin_certs "$WORK"
# client_ca NAME: a CA for client certificates ($WORK/NAME.pem, NAME-key.pem).
client_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -sha256 \
		-subj "/O=tlsbridge examples/CN=$1" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign" -keyout "$WORK/$1-key.pem" -out "$WORK/$1.pem" 2>/dev/null
}
# client_cert CA CN OUT: a client certificate for CN from CA, written as
# OUT.pem and OUT-key.pem (0600), replacing what is there.
client_cert() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
		-keyout "$WORK/$3-key.new" -out "$WORK/$3.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >"$WORK/client.ext"
	openssl x509 -req -in "$WORK/$3.csr" -CA "$WORK/$1.pem" -CAkey "$WORK/$1-key.pem" -CAcreateserial \
		-days 2 -sha256 -extfile "$WORK/client.ext" -out "$WORK/$3.new" 2>/dev/null
	chmod 600 "$WORK/$3-key.new"
	mv "$WORK/$3-key.new" "$WORK/$3-key.pem"
	mv "$WORK/$3.new" "$WORK/$3.pem"
}
client_ca client-ca
client_ca other-ca
client_cert client-ca app-2026 client
client_cert other-ca stranger other

start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
# The strict server: TLS 1.3, a certificate from client-ca.pem required in
# the handshake (-Verify 1), an HTML status page (-www).
start strict openssl s_server -accept "127.0.0.1:$STRICT_PORT" -cert "$WORK/nginx.pem" -key "$WORK/nginx-key.pem" \
	-Verify 1 -CAfile "$WORK/client-ca.pem" -verify_return_error -www -quiet
wait_port strict "$STRICT_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" "STRICT_PORT=$STRICT_PORT"
start_tlsbridge "$WORK/config.toml"

legacy() {
	curl_tls out --proxy "http://127.0.0.1:$PROXY_PORT" --cacert "$CA" \
		--tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" "$@" || true
}

legacy "https://api.takap.dev/whoami"
expect "TLS 1.0 app without a certificate: nginx verified tlsbridge's client certificate" "$out" 'client=CN=app-2026 verify=SUCCESS'
expect "nginx's log: TLS 1.2+ with the client certificate" "$(tail -n 1 "$WORK/nginx/logs/access.log")" ' 200 TLSv1\.[23] client="CN=app-2026" verify=SUCCESS'

legacy "https://strict-ok.takap.dev/"
expect "strict server (refuses in the handshake), right certificate: its page" "$out" 's_server|Ciphers supported'
legacy "https://strict.takap.dev/"
expect "strict server, no client_cert: 502, the cause" "$out" 'asks for a client certificate \(mutual TLS\) and refused the connection without one'
# shellcheck disable=SC2016 # the backquotes are the hint's own text
expect "  ... and the fix names the key where it goes" "$out" 'set `client_cert = "client.pem"` in \[rule.upstream\] of rule\[2\]'
expect "  ... inside the app's TLS 1.0 connection" "$out" 'HTTP/1.1 502'
legacy "https://strict-other.takap.dev/"
expect "strict server, certificate from another CA: 502 naming it" "$out" "rejected tlsbridge's client certificate \(subject \"CN=stranger\", issuer \"CN=other-ca,O=tlsbridge examples\""

out=$("$TLSBRIDGE" check -config "$WORK/config.toml" api.takap.dev 2>&1 || true)
expect "tlsbridge check api.takap.dev: the server asked, ours was sent" "$out" "client cert asked for; tlsbridge presented $WORK/client.pem \(subject \"CN=app-2026\"\)"
# nginx does not refuse in the handshake: it asks for a certificate,
# completes the handshake without one and answers 400 itself, which
# tlsbridge relays; check says the certificate was asked for and not sent.
legacy "https://api-nocert.takap.dev/whoami"
expect "nginx without tlsbridge's certificate: nginx's own 400, relayed" "$out" 'No required SSL certificate was sent'
out=$("$TLSBRIDGE" check -config "$WORK/config.toml" api-nocert.takap.dev 2>&1 || true)
expect "tlsbridge check api-nocert.takap.dev: asked for, none sent" "$out" 'client cert asked for by the server \(optional: it accepted the connection without one\); client_cert not set'
out=$("$TLSBRIDGE" check -config "$WORK/config.toml" strict.takap.dev 2>&1 || true)
expect "tlsbridge check strict.takap.dev: required, none configured" "$out" 'client cert asked for by the server and REQUIRED; tlsbridge has none'
out=$("$TLSBRIDGE" check -config "$WORK/config.toml" strict-other.takap.dev 2>&1 || true)
expect "tlsbridge check strict-other.takap.dev: ours rejected" "$out" 'presented .*other.pem \(subject "CN=stranger"\): REJECTED'

# Rotation: an app keeps a connection open; the certificate is renewed on
# disk and tlsbridge reloaded; new connections use the new one, the open
# connection keeps the one it presented.
start keepalive python3 "$EX_DIR/keepalive.py" "$PROXY_PORT" "$CA" "$WORK/ready" "$WORK/go"
for ((i = 0; i < 100; i++)); do
	[[ -e $WORK/ready ]] && break
	sleep 0.1
done
client_cert client-ca app-2027 client
kill -HUP "$(<"$WORK/tlsbridge.pid")"
for ((i = 0; i < 50; i++)); do
	grep -q 'config reloaded' "$WORK/tlsbridge.log" && break
	sleep 0.1
done
legacy "https://api.takap.dev/whoami"
expect "after the renewal and SIGHUP, a new connection presents the new certificate" "$out" 'client=CN=app-2027 verify=SUCCESS'
touch "$WORK/go"
for ((i = 0; i < 100; i++)); do
	running keepalive || break
	sleep 0.1
done
out=$(cat "$WORK/keepalive.log")
expect "the connection opened before the reload" "$out" '^before client=CN=app-2026'
expect "  ... keeps the certificate it presented" "$out" 'after client=CN=app-2026'

ex_finish
