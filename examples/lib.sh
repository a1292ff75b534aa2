# shellcheck shell=bash
# shellcheck disable=SC2034 # EX_DIR, LEGACY_CIPHERS...: used by the scripts that source this file
# Shared helpers for the tlsbridge examples. An example's run.sh does:
#
#   . "$(dirname "$0")/../lib.sh"
#   ex_init legacy-python          # temp dir, teardown trap, counters
#   need nginx nginx               # or SKIP (a failure under TLSBRIDGE_E2E=require)
#   ...checks: pass/fail/check...
#   ex_finish                      # "<example>: N passed, N failed", exit status
#
# Everything runs on loopback, in one temp dir, with free ports; every process
# an example starts is recorded in a PID file and stopped by the EXIT trap,
# and the temp dir is removed, whatever happens.

set -euo pipefail

# The examples set proxies per command; an inherited one would skew them.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

EXAMPLES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$EXAMPLES_DIR/.." && pwd)
TLSBRIDGE=${TLSBRIDGE:-$REPO_DIR/bin/tlsbridge}
# Bound on every client call, in seconds.
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-20}
# The origin's host name; rules pin it to nginx's loopback port, so no
# /etc/hosts entry is needed.
ORIGIN_HOST=nginx.takap.dev

EX_NAME=""
EX_DIR=""
WORK=""
PASSED=0
FAILED=0
declare -a USED_PORTS=()

# ex_init NAME: set up the temp dir, the counters and the teardown trap.
ex_init() {
	EX_NAME=$1
	EX_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/tlsbridge-$EX_NAME.XXXXXX")
	trap teardown EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# teardown stops every process recorded in $WORK/*.pid (TERM, then KILL
# after 5 s) and removes $WORK. On failure it first shows the logs.
teardown() {
	local rc=$? pidfile pid
	trap - EXIT
	[[ -n $WORK && -d $WORK ]] || exit "$rc"
	if ((FAILED > 0)) || ((rc != 0)); then
		show_logs
	fi
	for pidfile in "$WORK"/*.pid; do
		[[ -e $pidfile ]] || continue
		pid=$(<"$pidfile")
		kill -TERM "$pid" 2>/dev/null || continue
	done
	for pidfile in "$WORK"/*.pid; do
		[[ -e $pidfile ]] || continue
		reap "$(<"$pidfile")"
	done
	if [[ ${EXAMPLES_KEEP:-} == 1 ]]; then
		echo "$EX_NAME: kept $WORK (EXAMPLES_KEEP=1)"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}

# show_logs prints the tail of every log of a started process (for
# tlsbridge, its last lines other than the access lines).
show_logs() {
	local log
	for log in "$WORK"/*.log "$WORK"/nginx/logs/*.log; do
		[[ -s $log ]] || continue
		echo "----- $EX_NAME: last lines of ${log#"$WORK"/} -----"
		if [[ $log == */tlsbridge.log ]]; then
			grep -v 'msg=access ' "$log" | tail -n 12 | cut -c1-400
			echo "(access lines: $(grep -c 'msg=access ' "$log" || true); last:)"
			grep 'msg=access ' "$log" | tail -n 3 | cut -c1-400
		else
			tail -n 8 "$log" | cut -c1-300
		fi
	done
}

# skip TOOL PKG: the example cannot run here. Exit 0, or 1 when
# TLSBRIDGE_E2E=require (CI installs every tool, so a skip there is a bug).
skip() {
	echo "SKIP $EX_NAME: needs $1 (apt-get install $2)"
	if [[ ${TLSBRIDGE_E2E:-} == require ]]; then
		echo "FAIL $EX_NAME: TLSBRIDGE_E2E=require and $1 is missing"
		exit 1
	fi
	exit 0
}

# need TOOL PKG: skip unless TOOL is on PATH (or in an sbin directory, which
# a non-root PATH may lack: nginx lives in /usr/sbin).
need() {
	local d
	command -v "$1" >/dev/null 2>&1 && return 0
	for d in /usr/local/sbin /usr/sbin /sbin; do
		if [[ -x $d/$1 ]]; then
			PATH="$PATH:$d"
			return 0
		fi
	done
	skip "$1" "$2"
}

# need_tlsbridge: the built binary must exist (make build).
need_tlsbridge() {
	if [[ ! -x $TLSBRIDGE ]]; then
		echo "FAIL $EX_NAME: $TLSBRIDGE not found; run 'make build' first (make test does)"
		exit 1
	fi
}

# python_with_requests prints an interpreter that can import requests.
# Debian's /usr/bin/python3 comes first: python3-requests installs there,
# while a python3 earlier on PATH (pyenv, venv) may lack it.
python_with_requests() {
	local py
	for py in /usr/bin/python3 "$(command -v python3 || true)"; do
		[[ -n $py && -x $py ]] || continue
		if "$py" -c 'import requests' >/dev/null 2>&1; then
			echo "$py"
			return 0
		fi
	done
	return 1
}

pass() {
	PASSED=$((PASSED + 1))
	echo "PASS $EX_NAME: $*"
}

# fail DESC [OUTPUT]: count a failure; show the first lines of OUTPUT.
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL $EX_NAME: $1"
	if [[ -n ${2:-} ]]; then
		printf '%s\n' "$2" | head -n 20 | cut -c1-300 | sed 's/^/    | /'
	fi
}

# die DESC [OUTPUT]: a setup step failed; count it and stop the example.
die() {
	fail "$@"
	ex_finish || true
	exit 1
}

# expect DESC OUTPUT PATTERN: pass when OUTPUT matches the extended regexp.
expect() {
	if grep -Eq -- "$3" <<<"$2"; then
		pass "$1"
	else
		fail "$1 (want /$3/)" "$2"
	fi
}

# ex_finish prints the example's closing line and exits non-zero on failure.
ex_finish() {
	echo "$EX_NAME: $PASSED passed, $FAILED failed"
	((FAILED == 0))
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a loopback port nobody listens on, below the kernel's
# ephemeral range so outgoing connections do not take it meanwhile.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[[ " ${USED_PORTS[*]} " == *" $p "* ]] && continue
		port_in_use "$p" && continue
		USED_PORTS+=("$p")
		echo "$p"
		return 0
	done
	echo "no free port found" >&2
	return 1
}

# start NAME CMD...: run CMD in the background, output in $WORK/NAME.log,
# PID in $WORK/NAME.pid (stopped by teardown).
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	echo $! >"$WORK/$name.pid"
}

# stop NAME: stop a process started with start, and wait for it.
stop() {
	local pidfile="$WORK/$1.pid" pid
	[[ -e $pidfile ]] || return 0
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	reap "$pid"
	rm -f "$pidfile"
}

# reap PID: give a process sent TERM 5 s to exit, then KILL it, and wait.
reap() {
	local i
	for ((i = 0; i < 50; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# running NAME: the process started as NAME is alive.
running() {
	[[ -e $WORK/$1.pid ]] && kill -0 "$(<"$WORK/$1.pid")" 2>/dev/null
}

# wait_port NAME PORT: wait up to 15 s until PORT accepts connections,
# failing early if NAME died.
wait_port() {
	local name=$1 port=$2 i
	for ((i = 0; i < 150; i++)); do
		port_in_use "$port" && return 0
		running "$name" || die "$name exited before listening on 127.0.0.1:$port (log below)"
		sleep 0.1
	done
	die "$name is not listening on 127.0.0.1:$port after 15 s (log below)"
}

# render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE to OUT, replacing @KEY@.
render() {
	local tmpl=$1 out=$2 kv expr=()
	shift 2
	for kv in "$@"; do
		expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
	done
	sed "${expr[@]}" "$tmpl" >"$out"
	if grep -q '@[A-Z_]*@' "$out"; then
		echo "render $tmpl: placeholders left: $(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')" >&2
		return 1
	fi
}

# make_origin_certs DIR: a private CA (nginx-ca.pem) and a certificate for
# nginx.takap.dev, *.takap.dev and 127.0.0.1 (nginx.pem, nginx-key.pem):
# the origin tlsbridge does not trust until a rule lists nginx-ca.pem.
make_origin_certs() {
	local d=$1
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 \
		-subj "/O=tlsbridge examples/CN=example origin CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$d/nginx-ca-key.pem" -out "$d/nginx-ca.pem" 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=$ORIGIN_HOST" \
		-keyout "$d/nginx-key.pem" -out "$d/nginx.csr" 2>/dev/null
	printf '%s\n' \
		"subjectAltName=DNS:$ORIGIN_HOST,DNS:*.takap.dev,IP:127.0.0.1" \
		"basicConstraints=CA:FALSE" \
		"keyUsage=critical,digitalSignature,keyEncipherment" \
		"extendedKeyUsage=serverAuth" >"$d/nginx.ext"
	openssl x509 -req -in "$d/nginx.csr" -CA "$d/nginx-ca.pem" -CAkey "$d/nginx-ca-key.pem" \
		-CAcreateserial -days 2 -sha256 -extfile "$d/nginx.ext" -out "$d/nginx.pem" 2>/dev/null
}

# start_nginx TEMPLATE KEY=VALUE...: render the example's nginx.conf into
# $WORK/nginx (its own prefix; never the system config or service) and
# start nginx in the foreground. The template gets @PREFIX@ plus the pairs.
start_nginx() {
	local tmpl=$1 prefix="$WORK/nginx" port
	shift
	mkdir -p "$prefix/logs"
	render "$tmpl" "$prefix/nginx.conf" "PREFIX=$prefix" "DIR=$WORK" "$@" || die "render $tmpl"
	start nginx nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" -g 'daemon off;'
	while read -r port; do
		wait_port nginx "$port"
	done < <(grep -Eo 'listen +127\.0\.0\.1:[0-9]+' "$prefix/nginx.conf" | grep -Eo '[0-9]+$')
}

# start_tlsbridge CONFIG: start tlsbridge on CONFIG with the CA in $WORK/ca
# and wait for its listen port. $WORK/tlsbridge-ca.pem is the exported CA.
start_tlsbridge() {
	local config=$1 port
	port=$(sed -n 's/^listen *= *"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$config")
	if [[ ! -e $WORK/tlsbridge-ca.pem ]]; then
		"$TLSBRIDGE" ca init -ca-dir "$WORK/ca" >"$WORK/ca-init.out" 2>&1 ||
			die "tlsbridge ca init -ca-dir DIR failed" "$(cat "$WORK/ca-init.out")"
		"$TLSBRIDGE" ca export -ca-dir "$WORK/ca" -out "$WORK/tlsbridge-ca.pem" >"$WORK/ca-export.out" 2>&1 ||
			die "tlsbridge ca export -ca-dir DIR -out FILE failed" "$(cat "$WORK/ca-export.out")"
	fi
	start tlsbridge "$TLSBRIDGE" run -config "$config" -ca-dir "$WORK/ca"
	wait_port tlsbridge "$port"
}

# Curl flags for a legacy OpenSSL 3 client: without @SECLEVEL=0 OpenSSL 3
# offers TLS 1.0/1.1 and then refuses its signatures.
LEGACY_CIPHERS='DEFAULT:@SECLEVEL=0'

# curl_tls OUTVAR ARGS...: run curl with a timeout and -v, saving the
# combined output in OUTVAR; returns curl's status.
curl_tls() {
	local __out=$1 __rc=0 __res
	shift
	__res=$(timeout "$CLIENT_TIMEOUT" curl -sS -v --max-time "$CLIENT_TIMEOUT" "$@" 2>&1) || __rc=$?
	printf -v "$__out" '%s' "$__res"
	return "$__rc"
}

# tls_summary OUTPUT: "TLSv1 / ECDHE-ECDSA-AES256-SHA" from curl -v or
# "TLSv1 / ECDHE-ECDSA-AES256-SHA" from openssl s_client.
tls_summary() {
	local s
	s=$(grep -Eo 'SSL connection using [^ ]+ / [^ ]+' <<<"$1" | tail -n 1 | sed 's/SSL connection using //') || true
	if [[ -z $s ]]; then
		s="$(grep -Eo '^ *Protocol *: *[^ ]+' <<<"$1" | tail -n 1 | sed 's/.*: *//') / $(grep -Eo '^ *Cipher *: *[^ ]+' <<<"$1" | tail -n 1 | sed 's/.*: *//')"
	fi
	echo "$s"
}

# access_field KEY LINES: KEY's value in the last of tlsbridge's log LINES.
access_field() {
	tail -n 1 <<<"$2" | grep -Eo "(^| )$1=(\"[^\"]*\"|[^ ]*)" | sed "s/^ *$1=//; s/\"//g" || true
}

# expect_origin_modern MIN: nginx's access log has at least MIN answered
# GET /index.json requests, every one over TLS 1.2 or 1.3 (the app's TLS 1.0
# never reached the origin).
expect_origin_modern() {
	local log n
	log=$(grep 'GET /index.json' "$WORK/nginx/logs/access.log" || true)
	n=$(grep -c ' 200 TLSv1\.[23] ' <<<"$log" || true)
	if ((n >= $1)) && ! grep -Eq ' TLSv1(\.1)? ' <<<"$log"; then
		pass "nginx access log: $n requests, all over $(grep -Eo 'TLSv1\.[23] [^ ]+' <<<"$log" | sort -u | paste -sd, -)"
	else
		fail "nginx access log: want at least $1 requests, all over TLSv1.2/1.3" "$log"
	fi
}
