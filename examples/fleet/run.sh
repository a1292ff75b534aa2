#!/usr/bin/env bash
# Fleet failover: an app host, a balancer host (Debian's HAProxy, TCP mode,
# health checks on /readyz), two tlsbridge hosts each on its own sub-CA of
# one root, and an origin host (nginx, TLS 1.2+ only), each in its own
# network namespace on a private bridge (10.231.0.0/24, no loopback). The
# app (curl, TLS 1.0, trusting only the root) makes requests without pause
# while b1 gets SIGTERM (zero failures expected), then kill -9 (at most 2
# failures: the request in flight, plus one connect racing the kill), and
# b2 is reloaded with a new config (zero failures). Needs root and ip netns.
. "$(dirname "$0")/../lib.sh"
ex_init fleet
need_tlsbridge
if [[ $(id -u) != 0 ]]; then
	skip "root (network namespaces)" "run it as root; CI does"
fi
command -v ip >/dev/null 2>&1 && ip netns list >/dev/null 2>&1 || skip "ip netns" iproute2
need haproxy haproxy
need nginx nginx
need curl curl
need openssl openssl

NET=10.231.0
APP=$NET.10 LB=$NET.20 B1=$NET.31 B2=$NET.32 ORIGIN=$NET.40
P=tbfl$$ # namespace and link prefix, unique per run
HOSTS=(app lb b1 b2 origin)
declare -A ADDR=([app]=$APP [lb]=$LB [b1]=$B1 [b2]=$B2 [origin]=$ORIGIN)

# Namespaces go away with everything in them, veths and bridge included;
# the EXIT trap of lib.sh stops the processes first, this removes the rest.
# Anything still running in a namespace is killed before it is deleted.
netns_down() {
	local h pid
	for h in sw "${HOSTS[@]}"; do
		for pid in $(ip netns pids "$P-$h" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$P-$h" 2>/dev/null || true
	done
}
# lib.sh's teardown (stop what was started, show logs on failure, remove
# the temp dir), then the namespaces, whatever happened.
trap 'rc=$?; set +e; touch "$WORK/stop-app"; for f in "$WORK"/*.pid; do [[ -e $f ]] && stop "$(basename "$f" .pid)"; done; netns_down; (exit $rc); teardown' EXIT

ns() { local h=$1; shift; ip netns exec "$P-$h" "$@"; }

ip netns add "$P-sw"
ns sw ip link add br0 type bridge
ns sw ip link set br0 up
i=0
for h in "${HOSTS[@]}"; do
	i=$((i + 1))
	ip netns add "$P-$h"
	# The switch side's name: at most 15 bytes (IFNAMSIZ).
	ip link add "v$$-$i" netns "$P-sw" type veth peer name eth0 netns "$P-$h"
	ns sw ip link set "v$$-$i" master br0 up
	ns "$h" ip addr add "${ADDR[$h]}/24" dev eth0
	ns "$h" ip link set eth0 up
	ns "$h" ip link set lo up
done
pass "5 hosts in network namespaces on $NET.0/24 (app $APP, balancer $LB, tlsbridge $B1 and $B2, origin $ORIGIN)"

# One organisation root; one sub-CA per tlsbridge host (as openssl would
# make them for a real fleet); the origin's own CA.
cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/O=fleet example/CN=fleet root" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout root-key.pem -out root.pem 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign" \
	"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >sub.ext
subca() { # NAME: sub-NAME.pem, sub-NAME-key.pem
	openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/O=fleet example/CN=tlsbridge $1 sub-CA" \
		-keyout "sub-$1-key.pem" -out "sub-$1.csr" 2>/dev/null
	openssl x509 -req -in "sub-$1.csr" -CA root.pem -CAkey root-key.pem -CAcreateserial -days 2 -sha256 \
		-extfile sub.ext -out "sub-$1.pem" 2>/dev/null
}
subca b1
subca b2
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=fleet origin CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout origin-ca-key.pem -out origin-ca.pem 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=origin.fleet.test" \
	-keyout origin-key.pem -out origin.csr 2>/dev/null
printf '%s\n' "subjectAltName=DNS:origin.fleet.test" "extendedKeyUsage=serverAuth" >origin.ext
openssl x509 -req -in origin.csr -CA origin-ca.pem -CAkey origin-ca-key.pem -CAcreateserial -days 2 \
	-sha256 -extfile origin.ext -out origin.pem 2>/dev/null

for b in b1 b2; do
	mkdir -p "$b"
	cp origin-ca.pem "$b/"
	out=$("$TLSBRIDGE" ca import -ca-dir "$WORK/$b/ca" -chain root.pem "sub-$b.pem" "sub-$b-key.pem" 2>&1) ||
		die "ca import $b: $out"
	render "$EX_DIR/tlsbridge.toml" "$b/config.toml" ADDR="${ADDR[$b]}" LB="$LB" ORIGIN="$ORIGIN"
done
info=$("$TLSBRIDGE" ca info -ca-dir "$WORK/b1/ca" 2>&1 || true)
expect "ca info names the root apps trust" "$info" 'root +CN=fleet root.*apps trust this root'

mkdir -p nginx/logs
render "$EX_DIR/nginx.conf" nginx/nginx.conf PREFIX="$WORK/nginx" DIR="$WORK" ORIGIN="$ORIGIN"
start nginx ip netns exec "$P-origin" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" -g 'daemon off;'
render "$EX_DIR/haproxy.cfg" haproxy.cfg LB="$LB" B1="$B1" B2="$B2"
start haproxy ip netns exec "$P-lb" haproxy -db -f "$WORK/haproxy.cfg"
start_bridge() { start "tlsbridge-$1" ip netns exec "$P-$1" "$TLSBRIDGE" run -config "$WORK/$1/config.toml" -ca-dir "$WORK/$1/ca"; }
start_bridge b1
start_bridge b2

# status NAME: the balancer's view of server NAME (UP, DOWN, ...).
status() { ns lb curl -s --max-time 2 "http://$LB:8404/stats;csv" | awk -F, -v s="$1" '$1=="tlsbridge" && $2==s {print $18}'; }
wait_status() { # NAME WANT: seconds waited, or fail after 15 s
	local t0=$EPOCHREALTIME
	for ((i = 0; i < 150; i++)); do
		[[ $(status "$1") == "$2"* ]] && { awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN {printf "%.1f", a-b}'; return 0; }
		sleep 0.1
	done
	return 1
}
wait_status b1 UP >/dev/null && wait_status b2 UP >/dev/null ||
	die "the balancer never saw both instances UP: b1 $(status b1), b2 $(status b2)"
pass "HAProxy sees b1 and b2 UP through /readyz on their admin ports"

# The app: TLS 1.0 only, trusting only the root, through the balancer.
: >requests.log
app_loop() {
	while [[ ! -e $WORK/stop-app ]]; do
		code=$(ns app curl -s -o /dev/null -w '%{http_code}' --max-time 5 --proxy "http://$LB:3128" \
			--cacert "$WORK/root.pem" --tlsv1.0 --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0' \
			https://origin.fleet.test/ 2>/dev/null || true)
		echo "$EPOCHREALTIME $code" >>"$WORK/requests.log"
	done
}
app_loop &
echo $! >app.pid
sleep 2
phase() { # NAME: requests and failures since the last phase mark
	local n f
	n=$(sed -n "$((MARK + 1)),\$p" requests.log | wc -l)
	f=$(sed -n "$((MARK + 1)),\$p" requests.log | awk '$2!=200' | wc -l)
	MARK=$(wc -l <requests.log)
	echo "$n $f"
}
MARK=0
phase >phase.out; read -r n f <phase.out # not < <(phase): a subshell would not move MARK
((n > 0 && f == 0)) && pass "warm-up: $n requests, 0 failed" || fail "warm-up: $n requests, $f failed"

# 1. SIGTERM: /readyz fails, HAProxy takes b1 out, then its port closes.
kill -TERM "$(<tlsbridge-b1.pid)"
down=$(wait_status b1 DOWN) || down=never
reap "$(<tlsbridge-b1.pid)"
sleep 1
phase >phase.out; read -r n f <phase.out # not < <(phase): a subshell would not move MARK
echo "    SIGTERM b1: balancer marked it DOWN after ${down} s; $n requests, $f failed"
((f == 0)) && pass "SIGTERM: $n requests, 0 failed (DOWN after ${down} s, before the port closed)" ||
	fail "SIGTERM: $n requests, $f failed, want 0"

start_bridge b1
wait_status b1 UP >/dev/null || fail "b1 did not come back UP"
sleep 1
phase >/dev/null

# 2. kill -9: no drain; HAProxy retries refused connects on b2 (redispatch).
t0=$EPOCHREALTIME
pid=$(<tlsbridge-b1.pid)
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
down=$(wait_status b1 DOWN) || down=never
sleep 1
phase >phase.out; read -r n f <phase.out # not < <(phase): a subshell would not move MARK
# Failover: the longest gap between two successful requests in the phase.
gap=$(awk -v t0="$t0" '$2==200 && $1>=t0-1 {if (p) {d=$1-p; if (d>m) m=d}; p=$1} END {printf "%.2f", m}' requests.log)
echo "    kill -9 b1: DOWN after ${down} s; $n requests, $f failed; longest gap between successes ${gap} s"
((f <= 2)) && pass "kill -9: $n requests, $f failed (bound 2), failover gap ${gap} s" ||
	fail "kill -9: $n requests, $f failed, want at most 2"

# 3. Reload b2 with a new config (a second rule, a new drain_delay).
sed -i 's/^drain_delay = .*/drain_delay = "3s"/' b2/config.toml
printf '\n[[rule]]\nhosts = ["*.blocked.test"]\naction = "deny"\n' >>b2/config.toml
kill -HUP "$(<tlsbridge-b2.pid)"
for ((i = 0; i < 50; i++)); do grep -q 'config reloaded' tlsbridge-b2.log && break; sleep 0.1; done
sleep 1
phase >phase.out; read -r n f <phase.out # not < <(phase): a subshell would not move MARK
grep -q 'config reloaded.*2 rules' tlsbridge-b2.log && ((f == 0)) &&
	pass "reload of b2: new config in force, $n requests, 0 failed" ||
	fail "reload of b2: $n requests, $f failed" "$(tail -n 3 tlsbridge-b2.log)"

touch stop-app
reap "$(<app.pid)"
total=$(wc -l <requests.log)
failed=$(awk '$2!=200' requests.log | wc -l)
served1=$(grep -c 'msg=access' tlsbridge-b1.log 2>/dev/null || true)
served2=$(grep -c 'msg=access' tlsbridge-b2.log || true)
echo "    total: $total requests, $failed failed; access lines b1 (after restart) $served1, b2 $served2"
origin=$(grep -c 'TLSv1\.[23]' nginx/logs/access.log || true)
((origin > 0)) && ! grep -q 'TLSv1 \|TLSv1\.1' nginx/logs/access.log &&
	pass "the origin saw $origin requests, all TLS 1.2+" || fail "origin log: $(tail -n 2 nginx/logs/access.log)"
ex_finish
