#!/usr/bin/env bash
# trust-store: after `tlsbridge ca install`, legacy clients trust tlsbridge
# with no --cacert or truststore of their own; after `ca uninstall` they do
# not. Changes the real system store and Java cacerts, so it needs root and
# always uninstalls, even on failure. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init trust-store
[[ $(id -u) == 0 ]] || skip root "nothing; run it as root, it writes the system store"
need curl curl
need openssl openssl
need update-ca-certificates ca-certificates
need java default-jdk-headless
need javac default-jdk-headless
need_tlsbridge

# The clients must use the system store's defaults, nothing inherited.
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE JAVA_TOOL_OPTIONS JDK_JAVA_OPTIONS

ORIGIN_PORT=$(free_port)
PROXY_PORT=$(free_port)
URL="https://$ORIGIN_HOST/"
CA_DIR="$WORK/ca" # never the user's real CA directory

# Whatever happens, take the CA out of every store before lib.sh's teardown
# removes $WORK (and the CA with it, which would leave no way to find it).
uninstall_all() {
	[[ -e $CA_DIR/ca.pem ]] || return 0
	"$TLSBRIDGE" ca uninstall -ca-dir "$CA_DIR" -stores system,java >"$WORK/uninstall-trap.log" 2>&1 ||
		{ echo "trust-store: uninstall in the EXIT trap failed:"; cat "$WORK/uninstall-trap.log"; }
}
# set +e: under errexit, (exit $rc) would end the trap before teardown.
trap 'rc=$?; set +e; uninstall_all; (exit $rc); teardown' EXIT

# The origin: openssl s_server, TLS 1.2 and 1.3 only, its own private CA.
make_origin_certs "$WORK"
start origin openssl s_server -accept "127.0.0.1:$ORIGIN_PORT" -www -no_tls1 -no_tls1_1 \
	-cert "$WORK/nginx.pem" -key "$WORK/nginx-key.pem"
wait_port origin "$ORIGIN_PORT"
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "ORIGIN_PORT=$ORIGIN_PORT"
start_tlsbridge "$WORK/config.toml" # ca init -ca-dir $WORK/ca, then run

# A TLS-1.0-only curl through the proxy, with the system store's defaults.
legacy_curl() {
	curl_tls out --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY_CIPHERS" -x "http://127.0.0.1:$PROXY_PORT" "$URL"
}
ORIGIN_PAGE='s_server -accept|Ciphers supported in s_server'

# 1. Before install: curl does not know tlsbridge's CA.
if legacy_curl; then
	fail "curl TLSv1 before ca install: want 'unable to get local issuer certificate', got success" "$out"
else
	expect "curl TLSv1 before ca install: CA not trusted" "$out" 'local issuer certificate|self.signed|unable to get'
fi

# 2. ca install -stores system.
if inst=$("$TLSBRIDGE" ca install -ca-dir "$CA_DIR" -stores system 2>&1); then
	expect "ca install -stores system: $(grep -Eo 'system +installed' <<<"$inst")" "$inst" 'system +installed +/'
else
	fail "ca install -stores system" "$inst"
fi
# Idempotent: a second install changes nothing and says so.
inst=$("$TLSBRIDGE" ca install -ca-dir "$CA_DIR" -stores system 2>&1) || true
expect "ca install again: already installed" "$inst" 'system +already installed'
info=$("$TLSBRIDGE" ca info -ca-dir "$CA_DIR" 2>&1) || true
expect "ca info: trusted in the system store" "$info" 'trusted in +system \(/'

# 3. The same curl, still without --cacert, now works: TLS 1.0 to tlsbridge.
if legacy_curl; then
	expect "curl TLSv1 without --cacert after ca install: $(tls_summary "$out"), origin page" "$out" "$ORIGIN_PAGE"
else
	fail "curl TLSv1 without --cacert after ca install" "$out"
fi

# 4. ca uninstall: the same curl fails again.
if un=$("$TLSBRIDGE" ca uninstall -ca-dir "$CA_DIR" -stores system 2>&1); then
	expect "ca uninstall -stores system: removed" "$un" 'system +removed'
else
	fail "ca uninstall -stores system" "$un"
fi
if legacy_curl; then
	fail "curl TLSv1 after ca uninstall: want a verification failure, got success" "$out"
else
	expect "curl TLSv1 after ca uninstall: CA not trusted again" "$out" 'local issuer certificate|self.signed|unable to get'
fi

# 5. Java: the legacy-java example's client, TLS 1.0 only, with the JDK's
# default truststore (cacerts): no -Djavax.net.ssl.trustStore.
mkdir -p "$WORK/classes"
if ! out=$(timeout 60 javac -d "$WORK/classes" "$EX_DIR/../legacy-java/LegacyClient.java" 2>&1); then
	fail "javac LegacyClient.java" "$out"
	ex_finish
fi
java_app() {
	local rc=0
	out=$(timeout "$CLIENT_TIMEOUT" java -cp "$WORK/classes" \
		-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort="$PROXY_PORT" \
		-Djava.security.properties="$EX_DIR/../legacy-java/java.security" \
		-Djdk.tls.client.protocols=TLSv1 LegacyClient "$URL" 2>&1) || rc=$?
	return "$rc"
}
if java_app; then
	fail "java TLSv1 before ca install -stores java: want PKIX path building failed, got success" "$out"
else
	expect "java TLSv1 before ca install -stores java: CA not trusted" "$out" 'PKIX|unable to find valid certification path'
fi
if inst=$("$TLSBRIDGE" ca install -ca-dir "$CA_DIR" -stores java 2>&1); then
	expect "ca install -stores java: $(grep -Eo 'java +installed +[^ ]+' <<<"$inst")" "$inst" 'java +installed'
else
	fail "ca install -stores java" "$inst"
fi
if java_app; then
	expect "java TLSv1 with the JDK's own cacerts after ca install: $(grep -Eo 'protocol=[^ ]+ cipher=[^ ]+' <<<"$out")" "$out" 'protocol=TLSv1 .*status=200'
else
	fail "java TLSv1 after ca install -stores java" "$out"
fi
if un=$("$TLSBRIDGE" ca uninstall -ca-dir "$CA_DIR" -stores java 2>&1); then
	expect "ca uninstall -stores java: removed" "$un" 'java +removed'
else
	fail "ca uninstall -stores java" "$un"
fi
if java_app; then
	fail "java TLSv1 after ca uninstall: want PKIX path building failed, got success" "$out"
else
	expect "java TLSv1 after ca uninstall -stores java: CA not trusted again" "$out" 'PKIX|unable to find valid certification path'
fi

# 6. Nothing left behind: ca info says no for both stores.
info=$("$TLSBRIDGE" ca info -ca-dir "$CA_DIR" 2>&1) || true
expect "ca info after uninstall: system: no, java: no" "$info" 'system: no'
expect "ca info after uninstall: java: no" "$info" 'java: no'

ex_finish
