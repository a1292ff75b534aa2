#!/usr/bin/env bash
# legacy-java: a Java 17 HttpsURLConnection app limited to TLS 1.0/1.1
# reaches a TLS-1.2+-only nginx through tlsbridge. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init legacy-java
need nginx nginx
need openssl openssl
need javac default-jdk-headless
need keytool default-jdk-headless
need java default-jdk-headless
need_tlsbridge

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
URL="https://$ORIGIN_HOST/index.json"
BODY='body=\{ "test": "proxy-test" \}$'

make_origin_certs "$WORK"
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT"
start_tlsbridge "$WORK/config.toml"

# The app's truststore: tlsbridge's exported CA, nothing else.
keytool -importcert -noprompt -alias tlsbridge -file "$WORK/tlsbridge-ca.pem" \
	-keystore "$WORK/truststore.p12" -storetype PKCS12 -storepass changeit >/dev/null 2>&1
mkdir -p "$WORK/classes"
if ! out=$(timeout 60 javac -d "$WORK/classes" "$EX_DIR/LegacyClient.java" 2>&1); then
	fail "javac LegacyClient.java" "$out"
	ex_finish
fi
pass "javac $(javac -version 2>&1 | head -n 1): LegacyClient compiled, truststore from the exported CA"

# java_app OUTVAR JAVA_OPTS...: run the app through the proxy.
java_app() {
	local __out=$1 __rc=0 __res
	shift
	__res=$(timeout "$CLIENT_TIMEOUT" java -cp "$WORK/classes" \
		-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort="$PROXY_PORT" \
		-Djavax.net.ssl.trustStore="$WORK/truststore.p12" -Djavax.net.ssl.trustStorePassword=changeit \
		"$@" LegacyClient "$URL" 2>&1) || __rc=$?
	printf -v "$__out" '%s' "$__res"
	return "$__rc"
}

# java_ok LABEL WANT_PROTOCOL JAVA_OPTS...
java_ok() {
	local label=$1 want=$2 out
	shift 2
	if java_app out -Djava.security.properties="$EX_DIR/java.security" "$@" &&
		grep -Eq "^protocol=$want " <<<"$out" && grep -Eq "$BODY" <<<"$out"; then
		pass "java $label: $(grep -Eo 'protocol=[^ ]+ cipher=[^ ]+' <<<"$out" | head -n 1), verified, JSON ok"
	else
		fail "java $label: want protocol=$want and the JSON" "$out"
	fi
}

java_ok "-Djdk.tls.client.protocols=TLSv1 (default suites)" 'TLSv1' \
	-Djdk.tls.client.protocols=TLSv1
java_ok "-Djdk.tls.client.protocols=TLSv1 -Djdk.tls.client.cipherSuites=TLS_RSA_WITH_AES_128_CBC_SHA (RSA key exchange)" 'TLSv1' \
	-Djdk.tls.client.protocols=TLSv1 -Djdk.tls.client.cipherSuites=TLS_RSA_WITH_AES_128_CBC_SHA
java_ok "-Djdk.tls.client.protocols=TLSv1 -Djdk.tls.client.cipherSuites=TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA (RSA leaf)" 'TLSv1' \
	-Djdk.tls.client.protocols=TLSv1 -Djdk.tls.client.cipherSuites=TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
java_ok "-Djdk.tls.client.protocols=TLSv1.1 (default suites)" 'TLSv1\.1' \
	-Djdk.tls.client.protocols=TLSv1.1
java_ok "-Djdk.tls.client.protocols=TLSv1.2 (default suites)" 'TLSv1\.2' \
	-Djdk.tls.client.protocols=TLSv1.2

# Without the java.security override, JDK 17 refuses TLS 1.0 before sending
# anything: the README's troubleshooting entry.
if java_app out -Djdk.tls.client.protocols=TLSv1; then
	fail "java -Djdk.tls.client.protocols=TLSv1 without java.security override: want the JDK to refuse" "$out"
else
	expect "java -Djdk.tls.client.protocols=TLSv1 without the java.security override: the JDK refuses, as documented" \
		"$out" 'No appropriate protocol|protocol is disabled'
fi

# Java 6's default: SSLv2Hello enabled, so the first ClientHello is in
# SSLv2 format (RFC 6101 appendix E.2). Go's crypto/tls cannot read it: the
# static build refuses it with a hint; bin/tlsbridge-openssl (make
# build-openssl, the legacy engine) serves it, through the proxy and
# through a [[listener]].
SSLV2=(-Dhttps.protocols=SSLv2Hello,TLSv1 -Djdk.tls.client.protocols=SSLv2Hello,TLSv1)
if java_app out -Djava.security.properties="$EX_DIR/java.security" "${SSLV2[@]}"; then
	fail "java SSLv2Hello,TLSv1 through the static build: want the refusal" "$out"
else
	expect "java SSLv2Hello,TLSv1 through the static build (crypto/tls): refused, and tlsbridge's log says why" \
		"$(cat "$WORK/tlsbridge.log")" 'SSLv2-format ClientHello.*SSLv2Hello'
fi

TLSBRIDGE_OPENSSL=${TLSBRIDGE_OPENSSL:-$REPO_DIR/bin/tlsbridge-openssl}
if [[ ! -x $TLSBRIDGE_OPENSSL ]]; then
	fail "$TLSBRIDGE_OPENSSL not found: run 'make build-openssl' (make test does)"
	ex_finish
fi
stop tlsbridge
LISTENER_PORT=$(free_port)
render "$EX_DIR/config-engine.toml" "$WORK/config-engine.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" "LISTENER_PORT=$LISTENER_PORT"
start tlsbridge-openssl "$TLSBRIDGE_OPENSSL" run -config "$WORK/config-engine.toml" -ca-dir "$WORK/ca"
wait_port tlsbridge-openssl "$PROXY_PORT"
wait_port tlsbridge-openssl "$LISTENER_PORT"
expect "tlsbridge-openssl names its engine at start" "$(cat "$WORK/tlsbridge-openssl.log")" 'legacy TLS engine: OpenSSL 3'

java_ok "SSLv2Hello,TLSv1 (Java 6's default) through bin/tlsbridge-openssl" 'TLSv1' "${SSLV2[@]}"
expect "tlsbridge-openssl's access line: the SSLv2-format hello, served by the legacy engine" \
	"$(grep 'msg=access' "$WORK/tlsbridge-openssl.log" | tail -n 1)" 'client_hello=sslv2.*client_tls=TLS1.0|client_tls=TLS1.0.*client_hello=sslv2'
java_ok "-Djdk.tls.client.protocols=TLSv1 -Djdk.tls.client.cipherSuites=TLS_RSA_WITH_AES_128_CBC_SHA through bin/tlsbridge-openssl" 'TLSv1' \
	-Djdk.tls.client.protocols=TLSv1 -Djdk.tls.client.cipherSuites=TLS_RSA_WITH_AES_128_CBC_SHA
java_ok "-Djdk.tls.client.protocols=TLSv1.2 through bin/tlsbridge-openssl (crypto/tls)" 'TLSv1\.2' \
	-Djdk.tls.client.protocols=TLSv1.2

# The [[listener]]: no proxy; the app resolves the host to the listener
# (jdk.net.hosts.file), as a hosts entry would do for an unchangeable app.
printf '127.0.0.1 %s\n' "$ORIGIN_HOST" >"$WORK/hosts"
if out=$(timeout "$CLIENT_TIMEOUT" java -cp "$WORK/classes" -Djdk.net.hosts.file="$WORK/hosts" \
	-Djavax.net.ssl.trustStore="$WORK/truststore.p12" -Djavax.net.ssl.trustStorePassword=changeit \
	-Djava.security.properties="$EX_DIR/java.security" "${SSLV2[@]}" \
	LegacyClient "https://$ORIGIN_HOST:$LISTENER_PORT/index.json" 2>&1) &&
	grep -Eq '^protocol=TLSv1 ' <<<"$out" && grep -Eq "$BODY" <<<"$out"; then
	pass "java SSLv2Hello,TLSv1 through the [[listener]] on :$LISTENER_PORT: $(grep -Eo 'protocol=[^ ]+ cipher=[^ ]+' <<<"$out")"
else
	fail "java SSLv2Hello,TLSv1 through the [[listener]]" "$out"
fi

expect_origin_modern 1

ex_finish
