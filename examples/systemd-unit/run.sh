#!/usr/bin/env bash
# systemd-unit: packaging/tlsbridge.service as "make install" writes it
# passes systemd-analyze verify and rates an exposure of at most 2.0 in
# systemd-analyze security --offline=yes; packaging/install.sh stages every
# file and keeps an edited config; and tlsbridge, started the way the unit
# starts it (its ExecStart, Environment and StateDirectory, as an
# unprivileged user), finds its config, creates the CA in the state
# directory and sends READY=1, RELOADING=1/READY=1 on SIGHUP and STOPPING=1
# on SIGTERM to a real notify socket. No systemd needs to be running (PID 1
# here is no systemd). See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init systemd-unit
[[ $(id -u) == 0 ]] || skip root "nothing; run it as root: it runs tlsbridge as the user nobody, as the unit runs it as tlsbridge"
need systemd-analyze systemd
need python3 python3
need curl curl
[[ -x /bin/kill ]] || skip /bin/kill procps # the unit's ExecReload
need_tlsbridge

MAX_EXPOSURE=2.0
STAGE=$WORK/stage

# 1. make install's script into a staging root (DESTDIR: no user created,
# nothing outside $STAGE touched).
if out=$(DESTDIR=$STAGE PREFIX=/usr/local sh "$REPO_DIR/packaging/install.sh" install "$TLSBRIDGE" 2>&1); then
	pass "install.sh install DESTDIR=\$WORK/stage PREFIX=/usr/local"
else
	die "install.sh install" "$out"
fi
UNIT=$STAGE/usr/local/lib/systemd/system/tlsbridge.service
CONFIG=$STAGE/etc/tlsbridge/config.toml
declare -A want_mode=(
	[usr/local/bin/tlsbridge]=755
	[usr/local/lib/systemd/system/tlsbridge.service]=644
	[usr/local/lib/sysusers.d/tlsbridge.conf]=644
	[etc/tlsbridge/config.toml]=644
	[usr/local/share/doc/tlsbridge/README.md]=644
	[usr/local/share/doc/tlsbridge/install.md]=644
	[usr/local/share/doc/tlsbridge/LICENSE]=644
)
got_files=$(cd "$STAGE" && find . -type f | sed 's#^\./##' | sort)
want_files=$(printf '%s\n' "${!want_mode[@]}" | sort)
if [[ $got_files == "$want_files" ]]; then
	pass "staged exactly: $(tr '\n' ' ' <<<"$got_files")"
else
	fail "staged files" "$(diff <(echo "$want_files") <(echo "$got_files"))"
fi
for f in "${!want_mode[@]}"; do
	m=$(stat -c %a "$STAGE/$f" 2>/dev/null || echo missing)
	[[ $m == "${want_mode[$f]}" ]] || fail "$f: mode $m, want ${want_mode[$f]}"
done
if cmp -s "$CONFIG" "$REPO_DIR/config.toml"; then pass "config.toml is the default config"; else fail "staged config differs from config.toml"; fi
expect "unit runs the installed binary on the installed config" "$(grep '^ExecStart=' "$UNIT")" \
	'^ExecStart=/usr/local/bin/tlsbridge run -config /etc/tlsbridge/config.toml$'

# An edited config survives a second install.
echo "# edited" >>"$CONFIG"
DESTDIR=$STAGE sh "$REPO_DIR/packaging/install.sh" install "$TLSBRIDGE" >"$WORK/reinstall.log" 2>&1
if tail -n 1 "$CONFIG" | grep -q '^# edited$'; then
	pass "a second install keeps an edited config ($(grep -o 'kept [^ ]*' "$WORK/reinstall.log"))"
else
	fail "a second install replaced the edited config" "$(cat "$WORK/reinstall.log")"
fi

# 2. systemd-analyze. verify checks that ExecStart's binary exists, so it
# reads a copy of the staged unit whose ExecStart names the staged binary.
mkdir -p "$WORK/verify"
sed "s#^ExecStart=/usr/local/bin/tlsbridge#ExecStart=$STAGE/usr/local/bin/tlsbridge#" "$UNIT" >"$WORK/verify/tlsbridge.service"
if out=$(systemd-analyze verify --man=no "$WORK/verify/tlsbridge.service" 2>&1) && [[ -z $out ]]; then
	pass "systemd-analyze verify: no complaints"
else
	fail "systemd-analyze verify" "$out"
fi
out=$(systemd-analyze security --offline=yes "$WORK/verify/tlsbridge.service" 2>&1 || true)
exposure=$(sed -nE 's/.*Overall exposure level for tlsbridge.service: ([0-9.]+) .*/\1/p' <<<"$out")
if [[ -n $exposure ]] && awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
	pass "systemd-analyze security --offline=yes: exposure $exposure ($(grep -o 'Overall.*' <<<"$out" | sed 's/.*: [0-9.]* //')), at most $MAX_EXPOSURE"
else
	fail "systemd-analyze security: exposure '${exposure:-none}', want at most $MAX_EXPOSURE" "$(grep -E '^✗|Overall' <<<"$out")"
fi
# The template unit for several instances (docs/fleet.md), verified as
# instance "site-a", with the same exposure bound.
sed "s#^ExecStart=/usr/bin/tlsbridge#ExecStart=$STAGE/usr/local/bin/tlsbridge#" \
	"$REPO_DIR/packaging/tlsbridge@.service" >"$WORK/verify/tlsbridge@.service"
ln -s tlsbridge@.service "$WORK/verify/tlsbridge@site-a.service"
if out=$(systemd-analyze verify --man=no "$WORK/verify/tlsbridge@site-a.service" 2>&1) && [[ -z $out ]]; then
	pass "systemd-analyze verify tlsbridge@site-a (packaging/tlsbridge@.service): no complaints"
else
	fail "systemd-analyze verify tlsbridge@site-a" "$out"
fi
out=$(systemd-analyze security --offline=yes "$WORK/verify/tlsbridge@site-a.service" 2>&1 || true)
exposure=$(sed -nE 's/.*Overall exposure level for tlsbridge@site-a.service: ([0-9.]+) .*/\1/p' <<<"$out")
if [[ -n $exposure ]] && awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
	pass "template unit: exposure $exposure, at most $MAX_EXPOSURE"
else
	fail "template unit: exposure '${exposure:-none}', want at most $MAX_EXPOSURE" "$(grep -E '^✗|Overall' <<<"$out")"
fi
# The legacy engine's drop-in (docs/install.md): ExecStart= replaced by
# the openssl build. verify reads the drop-in (a missing binary there is
# named) and has no complaint with the real one.
ENGINE=$REPO_DIR/bin/tlsbridge-openssl
[[ -x $ENGINE ]] || die "$ENGINE not found: run 'make build-openssl' (make test does)"
mkdir -p "$WORK/verify-engine/tlsbridge.service.d"
cp "$WORK/verify/tlsbridge.service" "$WORK/verify-engine/"
engine_dropin() {
	printf '[Service]\nExecStart=\nExecStart=%s run -config /etc/tlsbridge/config.toml\n' "$1" >"$WORK/verify-engine/tlsbridge.service.d/engine.conf"
	systemd-analyze verify --man=no "$WORK/verify-engine/tlsbridge.service" 2>&1
}
expect "drop-in read: a missing engine binary is named" "$(engine_dropin "$WORK/missing/tlsbridge-openssl")" 'missing/tlsbridge-openssl is not executable'
if out=$(engine_dropin "$ENGINE") && [[ -z $out ]]; then
	pass "systemd-analyze verify with the legacy engine's drop-in: no complaints"
else
	fail "systemd-analyze verify with the legacy engine's drop-in" "$out"
fi
# shellcheck disable=SC2016 # $MAINPID is systemd's, literally in the unit
for setting in 'Type=notify' 'ExecReload=/bin/kill -HUP $MAINPID' 'User=tlsbridge' 'StateDirectory=tlsbridge' \
	'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' 'CapabilityBoundingSet=' \
	'SystemCallFilter=@system-service'; do
	grep -qxF -- "$setting" "$UNIT" || fail "unit lacks $setting"
done
grep -q '^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$' "$UNIT" || fail "unit lacks RestrictAddressFamilies="
# LimitNOFILE: two descriptors (app, upstream) per allowed connection.
max_conn=$(sed -nE 's/^max_connections *= *([0-9]+).*/\1/p' "$REPO_DIR/config.toml")
nofile=$(sed -nE 's/^LimitNOFILE=([0-9]+)$/\1/p' "$UNIT")
if [[ -n $max_conn && -n $nofile ]] && ((nofile >= 2 * max_conn)); then
	pass "LimitNOFILE=$nofile covers 2 x max_connections = $((2 * max_conn))"
else
	fail "LimitNOFILE='$nofile' for max_connections='$max_conn' (want at least twice)"
fi

# 3. Run it as the unit does: ExecStart's command line, its Environment=
# (%S is /var/lib), the StateDirectory= (mode 0700, owned by the service
# user) and an unprivileged user; $WORK/var-lib stands for /var/lib, the
# staged config for /etc/tlsbridge/config.toml (on a free port: 3128 may be
# taken on a shared machine; with the admin listener on, for /readyz), and
# notify_listener.py for systemd.
id nobody >/dev/null 2>&1 || die "no user 'nobody' to run tlsbridge as"
VARLIB=$WORK/var-lib
install -d -m 0755 "$VARLIB" && install -d -o nobody -m 0700 "$VARLIB/tlsbridge"
chmod 0755 "$WORK" "$STAGE" # let nobody reach the staged binary and config
PORT=$(free_port)
ADMIN_PORT=$(free_port)
sed -i -e "s/^listen = \"127.0.0.1:3128\"/listen = \"127.0.0.1:$PORT\"/" \
	-e "/^\[admin\]/,/^listen/ s/^listen = \"\"/listen = \"127.0.0.1:$ADMIN_PORT\"/" "$CONFIG"
grep -q "^listen = \"127.0.0.1:$ADMIN_PORT\"" "$CONFIG" || die "could not set [admin] listen in the staged config"
SOCK="@tlsbridge-systemd-unit-$$"
start notify python3 -u "$EX_DIR/notify_listener.py" "$SOCK"
for ((i = 0; i < 50; i++)); do grep -q listening "$WORK/notify.log" && break; sleep 0.1; done
exec_start=$(sed -nE 's/^ExecStart=//p' "$UNIT" | sed "s#/usr/local/bin/#$STAGE/usr/local/bin/#; s#/etc/tlsbridge/#$STAGE/etc/tlsbridge/#")
environment=$(sed -nE 's/^Environment=//p' "$UNIT" | sed "s#%S#$VARLIB#")
# shellcheck disable=SC2086 # the unit's command line, word-split as systemd does here
start tlsbridge env -i PATH=/usr/bin:/bin $environment NOTIFY_SOCKET="$SOCK" \
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups $exec_start
wait_notify() { # wait_notify STATE N: the Nth notification is STATE...
	local i
	for ((i = 0; i < 100; i++)); do
		(($(grep -c . "$WORK/notify.log") > $2)) && break
		sleep 0.1
	done
	expect "notification $2: $(sed -E 's/\$$//; s/\[0-9\]\+/N/' <<<"$1")" "$(sed -n "$(($2 + 1))p" "$WORK/notify.log")" "^$1"
}
wait_notify 'READY=1$' 1
if port_in_use "$PORT"; then pass "proxy listening on 127.0.0.1:$PORT at READY=1"; else fail "READY=1 but 127.0.0.1:$PORT is closed"; fi
readyz=$(curl -sS --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz" 2>&1 | tr -d '\n' || true)
expect "admin /readyz after READY=1: 200 ready" "$readyz" '^ready 200$'
CA=$VARLIB/tlsbridge
if [[ -s $CA/ca.pem && $(stat -c '%a %U' "$CA/ca-key.pem" 2>/dev/null) == "600 nobody" ]]; then
	pass "CA created on first start in the StateDirectory: ca.pem, ca-key.pem (0600, the service user's)"
else
	fail "no CA in $CA" "$(ls -la "$CA" 2>&1; cat "$WORK/tlsbridge.log")"
fi
expect "log names the config and the CA directory" "$(cat "$WORK/tlsbridge.log")" "config.toml.*$CA|$CA.*config.toml|ca_dir=$CA"
kill -HUP "$(<"$WORK/tlsbridge.pid")"
wait_notify 'RELOADING=1 MONOTONIC_USEC=[0-9]+$' 2
wait_notify 'READY=1$' 3
kill -TERM "$(<"$WORK/tlsbridge.pid")"
wait_notify 'STOPPING=1$' 4
reap "$(<"$WORK/tlsbridge.pid")"
expect "stopped cleanly" "$(tail -n 1 "$WORK/tlsbridge.log")" 'tlsbridge stopped'
expect "root reads the CA where the unit put it" "$("$TLSBRIDGE" ca info -ca-dir "$CA" 2>&1)" 'tlsbridge'

# 4. make uninstall's script removes everything but the (edited) config.
DESTDIR=$STAGE sh "$REPO_DIR/packaging/install.sh" uninstall >"$WORK/uninstall.log" 2>&1 || fail "install.sh uninstall" "$(cat "$WORK/uninstall.log")"
left=$(cd "$STAGE" && find . -type f | sed 's#^\./##')
if [[ $left == etc/tlsbridge/config.toml ]]; then
	pass "uninstall removes all but the config, and says so: $(grep -o 'kept [^ ]*' "$WORK/uninstall.log" | head -n 1)"
else
	fail "after uninstall, left: $left" "$(cat "$WORK/uninstall.log")"
fi

ex_finish
