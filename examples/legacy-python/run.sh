#!/usr/bin/env bash
# legacy-python: a requests app pinned to TLS 1.0 reaches a TLS-1.2+-only
# nginx through tlsbridge. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init legacy-python
need nginx nginx
need openssl openssl
PY=$(python_with_requests) || skip python3-requests python3-requests
need_tlsbridge

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT"
start_tlsbridge "$WORK/config.toml"

app() { # app HTTPS_PROXY URL CA_FILE: run app.py, output in $out
	local rc=0
	out=$(HTTPS_PROXY=$1 timeout "$CLIENT_TIMEOUT" "$PY" "$EX_DIR/app.py" "$2" "$3" 2>&1) || rc=$?
	return "$rc"
}
JSON='^\{"test": "proxy-test"\}$'

# 1. Without tlsbridge the app fails: nginx refuses TLS 1.0. (Straight to
# nginx's port, trusting nginx's own CA, so the version is the only problem.)
if app "" "https://127.0.0.1:$NGINX_PORT/index.json" "$WORK/nginx-ca.pem"; then
	fail "python-requests TLSv1 direct to nginx (TLS 1.2+ only): want a handshake failure, got success" "$out"
else
	expect "python-requests TLSv1 direct to nginx: refused ($(grep -Eio 'unsupported protocol|protocol version|no protocols available' <<<"$out" | head -n 1))" \
		"$out" 'UNSUPPORTED_PROTOCOL|unsupported protocol|PROTOCOL_VERSION|protocol version|NO_PROTOCOLS_AVAILABLE'
fi

# 2. Through tlsbridge, plain-HTTP proxy URL.
app "http://127.0.0.1:$PROXY_PORT" "$URL" "$WORK/tlsbridge-ca.pem" || true
expect "python-requests TLSv1 DEFAULT:@SECLEVEL=0 via HTTPS_PROXY=http://127.0.0.1:PORT: $out" "$out" "$JSON"

# 3. Through tlsbridge, TLS to the proxy itself (the classic trap): the app
# speaks TLS 1.0 to the proxy port and TLS 1.0 inside the tunnel.
app "https://127.0.0.1:$PROXY_PORT" "$URL" "$WORK/tlsbridge-ca.pem" || true
expect "python-requests TLSv1 DEFAULT:@SECLEVEL=0 via HTTPS_PROXY=https://127.0.0.1:PORT (TLSv1 to the proxy too): $out" "$out" "$JSON"

# 4. nginx saw TLS 1.2 or 1.3 for those requests, never TLS 1.0.
sleep 0.2
expect_origin_modern 2

# 5. tlsbridge's access log shows both sides: TLS 1.0 from the app, 1.2+ upstream.
log=$(grep 'msg=access' "$WORK/tlsbridge.log" | grep "host=$ORIGIN_HOST" || true)
n=$(grep -Ec 'client_tls=TLS1\.0 .*upstream_tls=TLS1\.[23]' <<<"$log" || true)
if ((n >= 2)); then
	pass "tlsbridge access log: $n requests client $(access_field client_tls "$log")/$(access_field client_cipher "$log") -> upstream $(access_field upstream_tls "$log")/$(access_field upstream_cipher "$log")"
else
	fail "tlsbridge access log: want 2 lines with client_tls=TLS1.0 and upstream_tls=TLS1.2/1.3" "$log"
fi

# 6. The forum's adapter (init_poolmanager only, no verify=; trust from
# REQUESTS_CA_BUNDLE). Behind a proxy requests ignores its TLS 1.0 pin, so
# the app speaks TLS 1.2+ and `auto` tunnels it to nginx: with only
# tlsbridge's CA in the bundle it cannot verify nginx's private CA (what the
# issue's user got); with both CAs in the bundle it works.
forum() { # forum HTTPS_PROXY BUNDLE: run forum_app.py, output in $out
	local rc=0
	out=$(HTTPS_PROXY=$1 REQUESTS_CA_BUNDLE=$2 timeout "$CLIENT_TIMEOUT" "$PY" "$EX_DIR/forum_app.py" "$URL" 2>&1) || rc=$?
	return "$rc"
}
if forum "http://127.0.0.1:$PROXY_PORT" "$WORK/tlsbridge-ca.pem"; then
	fail "forum adapter under auto, bundle = tlsbridge's CA only: want CERTIFICATE_VERIFY_FAILED (its TLS 1.2+ is tunnelled to nginx), got success" "$out"
else
	expect "forum adapter under auto, bundle = tlsbridge's CA only: CERTIFICATE_VERIFY_FAILED (tunnelled to nginx's private CA)" "$out" 'CERTIFICATE_VERIFY_FAILED'
fi
cat "$WORK/tlsbridge-ca.pem" "$WORK/nginx-ca.pem" >"$WORK/both-ca.pem"
forum "http://127.0.0.1:$PROXY_PORT" "$WORK/both-ca.pem" || true
expect "forum adapter under auto, bundle = both CAs: $out" "$out" "$JSON"

# 7. README.md's three steps, followed literally on a fresh machine: a
# checkout with the shipped config.toml and the server's private CA saved
# as origin-ca.pem, an empty HOME (the CA is created on first run), the
# forum's app. Changed for the test only: the proxy port, the host name,
# and the rule's address (no DNS for the test host).
R=$WORK/readme
mkdir -p "$R/bin" "$R/home"
ln -s "$TLSBRIDGE" "$R/bin/tlsbridge"
cp "$REPO_DIR/config.toml" "$R/config.toml"
cp "$WORK/nginx-ca.pem" "$R/origin-ca.pem"
rescue=$(awk '/^## Rescue a legacy app/ {on = 1; next} /^## / {on = 0} on' "$REPO_DIR/README.md")
step1=$(awk '/^cat >> config.toml <<.EOF.$/ {on = 1; next} /^EOF$/ {on = 0} on' <<<"$rescue")
# shellcheck disable=SC2016 # $PWD is README text, not expanded here
for want in 'make run' 'bin/tlsbridge ca export -out tlsbridge-ca.pem' 'HTTPS_PROXY=http://127.0.0.1:3128 REQUESTS_CA_BUNDLE=$PWD/tlsbridge-ca.pem python3'; do
	grep -qF -- "$want" <<<"$rescue" || die "README.md's three steps do not say '$want' any more: make this check follow them" "$rescue"
done
[[ $step1 == *api.example.com* && $step1 == *origin-ca.pem* ]] ||
	die "README.md's step 1 has no cat >> config.toml <<'EOF' snippet naming api.example.com and origin-ca.pem" "$rescue"
README_PORT=$(free_port)
{
	echo "${step1//api.example.com/$ORIGIN_HOST}"
	echo "address = \"127.0.0.1:$NGINX_PORT\" # test only: no DNS for $ORIGIN_HOST"
} >>"$R/config.toml"
sed -i "s/^listen = \"127\.0\.0\.1:3128\"/listen = \"127.0.0.1:$README_PORT\"/" "$R/config.toml"
grep -q "^listen = \"127.0.0.1:$README_PORT\"" "$R/config.toml" || die "the shipped config.toml has no listen = \"127.0.0.1:3128\" line"
fresh() { (cd "$R" && exec env -u XDG_DATA_HOME -u TLSBRIDGE_CA_DIR HOME="$R/home" "$@"); }
# Step 1: make run = make build, then bin/tlsbridge run -config config.toml.
fresh bin/tlsbridge run -config config.toml >"$WORK/readme-tlsbridge.log" 2>&1 &
echo $! >"$WORK/readme-tlsbridge.pid"
wait_port readme-tlsbridge "$README_PORT"
# Step 2, in a second terminal.
fresh bin/tlsbridge ca export -out tlsbridge-ca.pem >"$WORK/readme-export.out" 2>&1 ||
	die "README step 2: bin/tlsbridge ca export -out tlsbridge-ca.pem failed" "$(cat "$WORK/readme-export.out")"
# Step 3: the app, with HTTPS_PROXY and REQUESTS_CA_BUNDLE set for it only.
out=$(cd "$R" && HTTPS_PROXY=http://127.0.0.1:$README_PORT REQUESTS_CA_BUNDLE=$PWD/tlsbridge-ca.pem timeout "$CLIENT_TIMEOUT" "$PY" "$EX_DIR/forum_app.py" "$URL" 2>&1) || true
expect "README's three steps, forum adapter, private-CA nginx: $out" "$out" "$JSON"
log=$(grep 'msg=access' "$WORK/readme-tlsbridge.log" | grep "host=$ORIGIN_HOST" || true)
if [[ -e $R/home/.local/share/tlsbridge/ca-key.pem ]] && grep -Eq 'action=bump .*upstream_tls=TLS1\.[23]' <<<"$log"; then
	pass "README's tlsbridge: CA created in ~/.local/share/tlsbridge, app $(access_field client_tls "$log") bumped -> upstream $(access_field upstream_tls "$log")"
else
	fail "README's tlsbridge: want the CA in ~/.local/share/tlsbridge and an access line action=bump upstream_tls=TLS1.2/1.3" "$log"
fi

ex_finish
