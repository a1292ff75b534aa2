#!/usr/bin/env bash
# bench-vs-squid: the same legacy-app load against tlsbridge and against
# squid's ssl-bump in its fastest form, alternately, on one nginx origin
# (TLS 1.2/1.3 only), and one markdown table with the targets (ratios to
# squid for the one-shot and keep-alive apps; issue 6's absolute figures for
# the other scenarios).
#
#   examples/bench-vs-squid/bench.sh                   # both proxies (installs squid-openssl as root)
#   examples/bench-vs-squid/bench.sh --tlsbridge-only  # make bench: no squid
#
# Not part of `make test` (examples/run.sh runs only examples/*/run.sh).
# Knobs: BENCH_DURATION (5s), BENCH_CLIENTS (16), BENCH_IDLE (1000),
# BENCH_COLD_HOSTS (20000), BENCH_ROUNDS (1; the table shows each median),
# BENCH_OUT=DIR keeps results.jsonl and table.md,
# TLSBRIDGE_BENCH=PATH uses a built load tool instead of `go build`
# (it needs -tags openssl for rsa-resume), TLSBRIDGE_OPENSSL=PATH the
# legacy-engine build (bin/tlsbridge-openssl, made with `make
# build-openssl` when missing; BENCH_OPENSSL=0 runs without it).
# Both builds of tlsbridge run every scenario (the static one all but
# rsa-resume: it has no session-ID cache), so the table shows what the
# engine changes, also for the modern rows. BENCH_PROFILE=1 (with
# BENCH_OUT) keeps a CPU profile of each tlsbridge run, from the admin
# port's /debug/pprof/ (go tool pprof -top BENCH_OUT/pprof-BUILD-SCENARIO.pb.gz).
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init bench-vs-squid

SQUID=1
case ${1:-} in
--tlsbridge-only) SQUID=0 ;;
"") ;;
*)
	echo "usage: $0 [--tlsbridge-only]" >&2
	exit 2
	;;
esac
DURATION=${BENCH_DURATION:-5s}
CLIENTS=${BENCH_CLIENTS:-16}
IDLE=${BENCH_IDLE:-1000}
COLD_HOSTS=${BENCH_COLD_HOSTS:-20000}
ROUNDS=${BENCH_ROUNDS:-1}
BULK_BYTES=$((256 << 20))

need nginx nginx
need openssl openssl
need jq jq
need_tlsbridge

# squid-openssl is Debian's build with ssl-bump (--with-openssl,
# security_file_certgen). Installed here if missing; the system service it
# may start is stopped: this run uses its own config, port and files.
if ((SQUID)); then
	if ! command -v squid >/dev/null 2>&1 && [[ ! -x /usr/sbin/squid ]]; then
		if ((EUID != 0)); then
			skip squid squid-openssl
		fi
		echo "installing squid-openssl (apt-get)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q squid-openssl >"$WORK/apt.log" 2>&1 ||
			die "apt-get install squid-openssl failed" "$(tail -n 20 "$WORK/apt.log")"
		systemctl stop squid >/dev/null 2>&1 || service squid stop >/dev/null 2>&1 || true
	fi
	need squid squid-openssl
	CERTGEN=/usr/lib/squid/security_file_certgen
	[[ -x $CERTGEN ]] || die "$CERTGEN missing: install squid-openssl (the plain squid package cannot bump)"
fi

# The load tool.
BENCH=${TLSBRIDGE_BENCH:-}
if [[ -z $BENCH ]]; then
	need go golang
	BENCH=$WORK/tlsbridge-bench
	# -tags openssl: rsa-resume's app resumes by session ID, which only
	# OpenSSL's client does (Go's resumes by ticket).
	(cd "$REPO_DIR" && CGO_ENABLED=1 go build -tags openssl -o "$BENCH" ./cmd/tlsbridge-bench) >"$WORK/go-build.log" 2>&1 ||
		die "CGO_ENABLED=1 go build -tags openssl ./cmd/tlsbridge-bench failed (needs gcc and libssl-dev)" "$(cat "$WORK/go-build.log")"
fi

# The legacy-engine build, beside the static one.
OPENSSL=${BENCH_OPENSSL:-1}
TLSBRIDGE_OPENSSL=${TLSBRIDGE_OPENSSL:-$REPO_DIR/bin/tlsbridge-openssl}
if ((OPENSSL)) && [[ ! -x $TLSBRIDGE_OPENSSL ]]; then
	echo "building $TLSBRIDGE_OPENSSL (make build-openssl)"
	(cd "$REPO_DIR" && make build-openssl) >"$WORK/make-openssl.log" 2>&1 ||
		die "make build-openssl failed (needs gcc and libssl-dev; BENCH_OPENSSL=0 runs without it)" "$(tail -n 20 "$WORK/make-openssl.log")"
	[[ -x $TLSBRIDGE_OPENSSL ]] || die "make build-openssl did not make $TLSBRIDGE_OPENSSL (set TLSBRIDGE_OPENSSL=PATH)"
fi

# squid drops root privileges, so its files must be readable by its user.
chmod 755 "$WORK"

# --- origin: a private CA and a certificate for origin.test, *.origin.test
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=bench origin CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout "$WORK/origin-ca-key.pem" -out "$WORK/origin-ca.pem" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=origin.test" \
	-keyout "$WORK/origin-key.pem" -out "$WORK/origin.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:origin.test,DNS:*.origin.test" "basicConstraints=CA:FALSE" \
	"keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$WORK/origin.ext"
openssl x509 -req -in "$WORK/origin.csr" -CA "$WORK/origin-ca.pem" -CAkey "$WORK/origin-ca-key.pem" \
	-CAcreateserial -days 2 -sha256 -extfile "$WORK/origin.ext" -out "$WORK/origin.pem" 2>/dev/null ||
	die "origin certificate"
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k"
truncate -s "$BULK_BYTES" "$WORK/www/bulk" # sparse: reads come from no disk
NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
start_nginx "$EX_DIR/nginx.conf" "NGINX_PORT=$NGINX_PORT"

# --- tlsbridge
render "$EX_DIR/config.toml" "$WORK/config.toml" "PROXY_PORT=$PROXY_PORT" "NGINX_PORT=$NGINX_PORT" || die "render config.toml"
# add_admin CONFIG PORT: the admin listener (pprof), as an inline table
# on the first line: start_tlsbridge reads the proxy port from the only
# line that starts with "listen".
add_admin() {
	{ printf 'admin = { listen = "127.0.0.1:%s" }\n' "$2" && cat "$1"; } >"$1.new" && mv "$1.new" "$1"
}
PROFILE=${BENCH_PROFILE:-0}
if ((PROFILE)); then
	[[ -n ${BENCH_OUT:-} ]] || die "BENCH_PROFILE=1 needs BENCH_OUT=DIR for the profiles"
	need curl curl
	ADMIN_PORT=$(free_port)
	add_admin "$WORK/config.toml" "$ADMIN_PORT"
fi
start_tlsbridge "$WORK/config.toml"
TB_PID=$(<"$WORK/tlsbridge.pid")
# The openssl build: same config and CA, its own port.
if ((OPENSSL)); then
	OSSL_PORT=$(free_port)
	render "$EX_DIR/config.toml" "$WORK/config-openssl.toml" "PROXY_PORT=$OSSL_PORT" "NGINX_PORT=$NGINX_PORT" || die "render config.toml"
	if ((PROFILE)); then
		OSSL_ADMIN_PORT=$(free_port)
		add_admin "$WORK/config-openssl.toml" "$OSSL_ADMIN_PORT"
	fi
	start tlsbridge-openssl "$TLSBRIDGE_OPENSSL" run -config "$WORK/config-openssl.toml" -ca-dir "$WORK/ca"
	wait_port tlsbridge-openssl "$OSSL_PORT"
	OSSL_PID=$(<"$WORK/tlsbridge-openssl.pid")
fi

# --- squid
if ((SQUID)); then
	SQUID_PORT=$(free_port)
	SQUID_USER=$(id -un)
	if ((EUID == 0)); then
		SQUID_USER=proxy # Debian's squid user; squid refuses to run as root
	fi
	mkdir -p "$WORK/squid"
	# Its own CA (RSA-2048, what ssl-bump guides use; squid signs every
	# leaf with this key, so RSA keeps RSA-only apps working).
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=bench squid CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$WORK/squid-ca-key.pem" -out "$WORK/squid-ca.pem" 2>/dev/null
	{
		echo "127.0.0.1 origin.test"
		for ((r = 1; r <= ROUNDS; r++)); do
			seq 0 $((COLD_HOSTS - 1)) | sed "s/.*/127.0.0.1 r$r-h&.origin.test/"
		done
	} >"$WORK/hosts"
	"$CERTGEN" -c -s "$WORK/squid/ssl_db" -M 64MB >"$WORK/certgen-init.log" 2>&1 ||
		die "security_file_certgen -c -s DIR -M 64MB failed" "$(cat "$WORK/certgen-init.log")"
	render "$EX_DIR/squid.conf" "$WORK/squid/squid.conf" "DIR=$WORK" "SQUID_PORT=$SQUID_PORT" "SQUID_USER=$SQUID_USER" ||
		die "render squid.conf"
	if ((EUID == 0)); then
		chown -R "$SQUID_USER" "$WORK/squid" "$WORK/squid-ca-key.pem"
	fi
	squid -k parse -f "$WORK/squid/squid.conf" >"$WORK/squid-parse.log" 2>&1 ||
		die "squid -k parse rejects squid.conf" "$(grep -iE 'error|fatal|bungled' "$WORK/squid-parse.log")"
	start squid squid -N -f "$WORK/squid/squid.conf"
	SQUID_PID=$(<"$WORK/squid.pid")
	wait_port squid "$SQUID_PORT"
fi

# run_bench SCENARIO PROXY ARGS...: one run of the load tool; its JSON line
# goes to results.jsonl, a short line to the terminal.
RESULTS=$WORK/results.jsonl
run_bench() {
	local scen=$1 who=$2 proxy pid ca out rc=0 line admin="" prof=""
	shift 2
	case $who in
	tlsbridge) proxy=127.0.0.1:$PROXY_PORT pid=$TB_PID ca=$WORK/tlsbridge-ca.pem admin=${ADMIN_PORT:-} ;;
	tlsbridge-openssl) proxy=127.0.0.1:$OSSL_PORT pid=$OSSL_PID ca=$WORK/tlsbridge-ca.pem admin=${OSSL_ADMIN_PORT:-} ;;
	squid) proxy=127.0.0.1:$SQUID_PORT pid=$SQUID_PID ca=$WORK/squid-ca.pem ;;
	esac
	# A CPU profile of most of the run (its first and last half second
	# left out), newest round kept.
	if ((PROFILE)) && [[ -n $admin && $scen != warmup && $scen != idle ]]; then
		local secs=${DURATION%s}
		if [[ $secs =~ ^[0-9]+$ ]] && ((secs >= 2)); then
			mkdir -p "$BENCH_OUT"
			(sleep 0.5 && curl -sS -m 60 -o "$BENCH_OUT/pprof-$who-$scen.pb.gz" \
				"http://127.0.0.1:$admin/debug/pprof/profile?seconds=$((secs - 1))") >"$WORK/pprof.log" 2>&1 &
			prof=$!
		fi
	fi
	out=$(timeout 600 "$BENCH" -proxy "$proxy" -cacert "$ca" -pid "$pid" -json -label "$who $scen" \
		-target "origin.test:$NGINX_PORT" -path /1k -c "$CLIENTS" -d "$DURATION" "$@" 2>&1) || rc=$?
	[[ -n $prof ]] && wait "$prof"
	line=$(grep '^{' <<<"$out" | tail -n 1 || true)
	if [[ -z $line ]]; then # the tool could not even start a run
		line=$(jq -cn --arg l "$who $scen" --arg e "$(tail -n 3 <<<"$out")" '{label: $l, errors: -1, first_error: $e}')
	fi
	[[ $scen == warmup ]] && return 0
	echo "$line" >>"$RESULTS"
	jq -r '"\(.label): \(.ops_per_sec // 0) op/s, \(.mb_per_s // 0) MB/s, p50 \(.p50_ms // 0) ms, p99 \(.p99_ms // 0) ms, CPU \(.proxy_cpu_per_op_us // 0) µs/op, \(.proxy_cpu_s_per_gib // 0) s/GiB, RSS \(.rss_per_conn_kib // 0) KiB/conn, \(.negotiated_tls // "") \(.cipher // "") \(.leaf_key // ""), errors \(.errors)\(if .first_error then " (" + .first_error + ")" else "" end)"' <<<"$line"
	if [[ $who == tlsbridge* ]]; then
		if ((rc == 0)); then pass "$who $scen: no errors"; else fail "$who $scen: errors" "$out"; fi
	fi
}

PROXIES=(tlsbridge)
((OPENSSL)) && PROXIES+=(tlsbridge-openssl)
((SQUID)) && PROXIES+=(squid)
# Warm up: start squid's helpers, mint origin.test on both.
for who in "${PROXIES[@]}"; do
	run_bench warmup "$who" -d 1s
done

# Idle memory once, first, while both processes are fresh: a later round
# would start from memory that earlier loads left in squid's pools or Go's
# heap and understate the growth per connection.
if [[ -z ${BENCH_SCENARIOS:-} || " $BENCH_SCENARIOS " == *" idle "* ]]; then
	for who in "${PROXIES[@]}"; do
		run_bench idle "$who" -idle "$IDLE"
	done
fi

i=0
for ((round = 1; round <= ROUNDS; round++)); do
	((ROUNDS == 1)) || echo "--- round $round of $ROUNDS"
	# Scenario ARGS; each round's cold hosts (rN-h*.origin.test) are new.
	SCENARIOS=(
		"newconn-legacy|"
		"newconn-close|-close"
		"newconn-rsa|-suites rsa"
		"rsa-resume|-suites rsa -resume id"
		"keepalive|-keepalive"
		"bulk-cbc|-bulk $BULK_BYTES -path /bulk"
		"bulk-gcm|-bulk $BULK_BYTES -path /bulk -tls 1.2 -suites modern"
		"cold|-target r$round-h%d.origin.test:$NGINX_PORT -hosts $COLD_HOSTS"
	)
	for s in "${SCENARIOS[@]}"; do
		scen=${s%%|*}
		# BENCH_SCENARIOS="keepalive newconn-close" runs only those.
		if [[ -n ${BENCH_SCENARIOS:-} && " $BENCH_SCENARIOS " != *" $scen "* ]]; then continue; fi
		# Only the openssl build resumes by session ID (see below).
		if [[ $scen == rsa-resume ]] && ((!OPENSSL)); then continue; fi
		read -r -a args <<<"${s#*|}"
		order=("${PROXIES[@]}")
		if ((i % 2 == 1)); then # alternate who goes first
			order=()
			for ((j = ${#PROXIES[@]} - 1; j >= 0; j--)); do order+=("${PROXIES[j]}"); done
		fi
		for who in "${order[@]}"; do
			# The static build has no session-ID cache: apps that resume
			# by ID are bin/tlsbridge-openssl's (examples/session-resumption).
			[[ $scen == rsa-resume && $who == tlsbridge ]] && continue
			run_bench "$scen" "$who" "${args[@]}"
		done
		i=$((i + 1))
	done
done

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), Linux $(uname -r)"
echo "$("$TLSBRIDGE" version 2>/dev/null | head -n 1)$( ((OPENSSL)) && echo " and $(basename "$TLSBRIDGE_OPENSSL") ($(openssl version | awk '{print $1, $2}'))"), $(go version 2>/dev/null | awk '{print $3}')$( ((SQUID)) && echo ", $(squid -v | head -n 1)"), $(nginx -v 2>&1 | sed 's/.*: //'), $CLIENTS clients, $DURATION per run$( ((ROUNDS > 1)) && echo ", median of $ROUNDS rounds")"
echo
jq -rs --argjson squid "$SQUID" -f "$EX_DIR/table.jq" "$RESULTS" | tee "$WORK/table.md"
if [[ -n ${BENCH_OUT:-} ]]; then
	mkdir -p "$BENCH_OUT"
	cp "$RESULTS" "$WORK/table.md" "$BENCH_OUT/"
fi
ex_finish
