#!/usr/bin/env bash
# deb-install: "make deb" builds a .deb that dpkg installs on this machine
# with every file where it belongs, a conffile, the tlsbridge user and
# /var/lib/tlsbridge, and no running service (PID 1 here is no systemd);
# the installed tlsbridge runs (version, check, ca init as its user), and
# so does the legacy engine it ships (an XP-like app resumes by session ID);
# "dpkg -r" keeps config, CA and user, a reinstall keeps an edited config,
# and "dpkg -P" leaves the machine as it was before. Needs root, and
# refuses to run where tlsbridge is already installed. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init deb-install
[[ $(id -u) == 0 ]] || skip root "nothing; run it as root, it installs a package"
need dpkg dpkg
need go golang-go
need make make
need openssl openssl
need timeout coreutils
need setpriv util-linux
need update-ca-certificates ca-certificates
need_tlsbridge

# What "the machine as before" means here: the package, its files, user,
# group and directories.
machine_state() {
	dpkg-query -W -f='${db:Status-Status}\n' tlsbridge 2>/dev/null || echo "not-installed"
	getent passwd tlsbridge || echo "no user"
	getent group tlsbridge || echo "no group"
	local p
	for p in /usr/bin/tlsbridge /usr/lib/tlsbridge /usr/lib/systemd/system/tlsbridge.service /usr/lib/sysusers.d/tlsbridge.conf \
		/etc/tlsbridge /var/lib/tlsbridge /usr/share/doc/tlsbridge; do
		if [[ -e $p ]]; then echo "present $p"; else echo "absent $p"; fi
	done
}
before=$(machine_state)
if grep -qE '^(installed|config-files|half)|^tlsbridge:|^present' <<<"$before"; then
	echo "FAIL $EX_NAME: tlsbridge is (partly) installed on this machine; not touching it:"
	grep -E '^(installed|config-files|half)|^tlsbridge:|^present' <<<"$before" | sed 's/^/    | /'
	exit 1
fi
# Whatever happens below, take the CA out of the system store (with the
# repository's binary: the package's may be gone) and purge the package.
purge_all() {
	if [[ -s /var/lib/tlsbridge/ca.pem ]]; then
		"$TLSBRIDGE" ca uninstall -ca-dir /var/lib/tlsbridge -stores system >"$WORK/uninstall-trap.log" 2>&1 ||
			{ echo "deb-install: ca uninstall in the EXIT trap failed:"; cat "$WORK/uninstall-trap.log"; }
	fi
	if dpkg-query -W tlsbridge >/dev/null 2>&1; then
		dpkg -P tlsbridge >"$WORK/purge-trap.log" 2>&1 || { echo "deb-install: purge in the EXIT trap failed:"; cat "$WORK/purge-trap.log"; }
	fi
}
# set +e: under errexit, (exit $rc) would end the trap before teardown.
trap 'rc=$?; set +e; purge_all; (exit $rc); teardown' EXIT

# 1. make deb, into $WORK.
if out=$(make -s -C "$REPO_DIR" deb DEB_DIR="$WORK" 2>&1); then
	DEB=$(ls "$WORK"/tlsbridge_*.deb)
	pass "make deb: $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"
else
	die "make deb" "$out"
fi
info=$(dpkg-deb -I "$DEB")
expect "control: Package tlsbridge, Depends procps, libssl3 (the legacy engine's)" "$info" 'Depends: procps, libssl3$'
expect "conffile: /etc/tlsbridge/config.toml" "$(dpkg-deb -f "$DEB" Package; dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)" '^/etc/tlsbridge/config.toml$'

# 2. dpkg -i: the postinst creates the user and the CA directory, starts
# nothing, and says what to do next.
if out=$(dpkg -i "$DEB" 2>&1 </dev/null); then
	expect "dpkg -i: postinst prints the next steps" "$out" 'tlsbridge ca install -ca-dir /var/lib/tlsbridge'
else
	die "dpkg -i" "$out"
fi
declare -A want=(
	[/usr/bin/tlsbridge]="755 root"
	[/usr/lib/tlsbridge/tlsbridge-openssl]="755 root"
	[/usr/lib/systemd/system/tlsbridge.service]="644 root"
	[/usr/lib/sysusers.d/tlsbridge.conf]="644 root"
	[/etc/tlsbridge/config.toml]="644 root"
	[/usr/share/doc/tlsbridge/README.md]="644 root"
	[/usr/share/doc/tlsbridge/install.md]="644 root"
	[/usr/share/doc/tlsbridge/copyright]="644 root"
)
listed=$(dpkg -L tlsbridge | while read -r f; do [[ -f $f ]] && echo "$f"; done | sort)
if [[ $listed == "$(printf '%s\n' "${!want[@]}" | sort)" ]]; then
	pass "dpkg -L: exactly the ${#want[@]} files"
else
	fail "dpkg -L files" "$(diff <(printf '%s\n' "${!want[@]}" | sort) <(echo "$listed"))"
fi
bad=""
for f in "${!want[@]}"; do
	got=$(stat -c '%a %U' "$f" 2>/dev/null || echo missing)
	[[ $got == "${want[$f]}" ]] || bad+="$f: $got, want ${want[$f]}; "
done
if [[ -z $bad ]]; then pass "modes and owners"; else fail "modes and owners: $bad"; fi
if cmp -s /usr/lib/systemd/system/tlsbridge.service "$REPO_DIR/packaging/tlsbridge.service" &&
	cmp -s /etc/tlsbridge/config.toml "$REPO_DIR/config.toml" &&
	cmp -s /usr/share/doc/tlsbridge/copyright "$REPO_DIR/LICENSE"; then
	pass "unit, config and copyright are the repository's"
else
	fail "installed unit, config or copyright differ from the repository's"
fi
if out=$(dpkg --verify tlsbridge 2>&1) && [[ -z $out ]]; then pass "dpkg --verify: checksums match"; else fail "dpkg --verify" "$out"; fi
user=$(getent passwd tlsbridge || true)
uid=$(cut -d: -f3 <<<"$user")
if [[ -n $user && $uid -lt 1000 && $user == *:/usr/sbin/nologin ]]; then
	pass "system user: $user"
else
	fail "tlsbridge user: '$user' (want a system uid and /usr/sbin/nologin)"
fi
expect "/var/lib/tlsbridge: 700 tlsbridge:tlsbridge" "$(stat -c '%a %U:%G' /var/lib/tlsbridge 2>&1)" '^700 tlsbridge:tlsbridge$'
# Only the installed binary counts: other tlsbridges may run on a shared machine.
installed_running() {
	local pid
	for pid in $(pgrep -x tlsbridge || true); do
		[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == /usr/bin/tlsbridge ]] && echo "$pid"
	done
	pgrep -u tlsbridge || true
}
if [[ -n $(installed_running) ]]; then
	fail "/usr/bin/tlsbridge runs after dpkg -i" "$(installed_running)"
else
	pass "no service started (no /usr/bin/tlsbridge process, none as user tlsbridge)"
fi

# 3. The installed binary.
head=$(git -C "$REPO_DIR" rev-parse HEAD)
expect "tlsbridge version" "$(/usr/bin/tlsbridge version 2>&1)" "^tlsbridge .*\\(commit $head, built [0-9]{4}-[0-9]{2}-[0-9]{2}T"
expect "tlsbridge --version" "$(/usr/bin/tlsbridge --version 2>&1)" "commit $head"
make_origin_certs "$WORK"
ORIGIN_PORT=$(free_port)
start origin openssl s_server -accept "127.0.0.1:$ORIGIN_PORT" -www -no_tls1 -no_tls1_1 \
	-cert "$WORK/nginx.pem" -key "$WORK/nginx-key.pem"
wait_port origin "$ORIGIN_PORT"
PROXY_PORT=$(free_port)
render "$EX_DIR/config.toml" "$WORK/config.toml" "ORIGIN_PORT=$ORIGIN_PORT" "PROXY_PORT=$PROXY_PORT"
if out=$(/usr/bin/tlsbridge check -config "$WORK/config.toml" -ca-dir /var/lib/tlsbridge "$ORIGIN_HOST" 2>&1); then
	expect "tlsbridge check $ORIGIN_HOST (TLS 1.2+ origin, private CA): a TLS 1.0 app gets through" "$out" 'TLS 1.2 yes'
else
	fail "tlsbridge check $ORIGIN_HOST exited non-zero" "$out"
fi
# The installed config (CONNECT to port 443 only): check says why a legacy
# app would be refused, names the fix and exits non-zero.
if out=$(/usr/bin/tlsbridge check -config /etc/tlsbridge/config.toml -ca-dir /var/lib/tlsbridge "127.0.0.1:$ORIGIN_PORT" 2>&1); then
	fail "tlsbridge check with the installed config: want a non-zero exit (untrusted origin CA)" "$out"
else
	expect "tlsbridge check 127.0.0.1:$ORIGIN_PORT with the installed config: non-zero, names connect_ports" "$out" 'not in connect_ports \[443\]; add it'
fi
# The CA, made by the service user in the unit's StateDirectory.
if out=$(setpriv --reuid=tlsbridge --regid=tlsbridge --clear-groups /usr/bin/tlsbridge ca init \
	-config /etc/tlsbridge/config.toml -ca-dir /var/lib/tlsbridge 2>&1) &&
	[[ $(stat -c '%a %U' /var/lib/tlsbridge/ca-key.pem) == "600 tlsbridge" ]]; then
	pass "ca init as tlsbridge: /var/lib/tlsbridge/ca-key.pem 600 tlsbridge"
else
	fail "ca init as tlsbridge" "$out"
fi

# The legacy engine the package ships: an XP-like app (TLS 1.0, RSA key
# exchange, no tickets) through it resumes its session by ID.
ENGINE=/usr/lib/tlsbridge/tlsbridge-openssl
expect "tlsbridge-openssl version: this commit, with its libssl" "$("$ENGINE" version 2>&1)" "commit $head.*legacy engine OpenSSL 3"
if out=$("$ENGINE" ca init -ca-dir "$WORK/engine-ca" 2>&1 && "$ENGINE" ca export -ca-dir "$WORK/engine-ca" -out "$WORK/engine-ca.pem" 2>&1); then
	start tlsbridge-openssl "$ENGINE" run -config "$WORK/config.toml" -ca-dir "$WORK/engine-ca"
	wait_port tlsbridge-openssl "$PROXY_PORT"
	# xp_app ARGS...: one GET through the engine, s_client's summary line.
	xp_app() {
		printf 'GET / HTTP/1.0\r\n\r\n' | timeout "$CLIENT_TIMEOUT" openssl s_client -proxy "127.0.0.1:$PROXY_PORT" \
			-connect "$ORIGIN_HOST:443" -servername "$ORIGIN_HOST" -tls1 -cipher 'AES128-SHA:@SECLEVEL=0' -no_ticket \
			-CAfile "$WORK/engine-ca.pem" -verify_return_error -ign_eof "$@" 2>&1 | grep -Eo '^(New|Reused), [^ ]+, Cipher is [^ ]+' | head -n 1
	}
	expect "tlsbridge-openssl: first connection, full handshake" "$(xp_app -sess_out "$WORK/xp.pem")" '^New, .*Cipher is AES128-SHA'
	expect "tlsbridge-openssl: second connection resumes by session ID" "$(xp_app -sess_in "$WORK/xp.pem")" '^Reused, .*Cipher is AES128-SHA'
	expect "tlsbridge-openssl: its access line says client_resumed=true" "$(grep 'msg=access' "$WORK/tlsbridge-openssl.log" | tail -n 1)" 'client_resumed=true'
	stop tlsbridge-openssl
else
	fail "tlsbridge-openssl ca init/export" "$out"
fi

# 4. dpkg -r keeps the conffile, the CA and the user, and warns that the
# CA is still trusted; a reinstall keeps an edited config and finds the CA.
echo "# edited by deb-install" >>/etc/tlsbridge/config.toml
out=$(/usr/bin/tlsbridge ca install -ca-dir /var/lib/tlsbridge -stores system 2>&1) || fail "ca install -stores system" "$out"
out=$(dpkg -r tlsbridge 2>&1) || fail "dpkg -r" "$out"
expect "dpkg -r: prerm warns that the CA is still trusted" "$out" 'still trusted on this host.*|ca uninstall -ca-dir /var/lib/tlsbridge'
after_remove=$(machine_state)
expect "dpkg -r: binary and unit gone" "$after_remove" 'absent /usr/bin/tlsbridge'
grep -q 'absent /usr/lib/systemd/system/tlsbridge.service' <<<"$after_remove" || fail "dpkg -r left the unit"
if [[ -s /var/lib/tlsbridge/ca-key.pem ]] && getent passwd tlsbridge >/dev/null && grep -q 'edited by deb-install' /etc/tlsbridge/config.toml; then
	pass "dpkg -r: CA, user and edited config kept (status $(head -n 1 <<<"$after_remove"))"
else
	fail "dpkg -r removed the CA, the user or the config" "$after_remove"
fi
if out=$(dpkg -i --force-confold "$DEB" 2>&1 </dev/null); then
	expect "reinstall: postinst names the existing CA" "$out" 'The CA is /var/lib/tlsbridge/ca.pem'
	if grep -q 'edited by deb-install' /etc/tlsbridge/config.toml; then pass "reinstall: edited config kept"; else fail "reinstall replaced the edited config"; fi
	out=$(/usr/bin/tlsbridge ca uninstall -ca-dir /var/lib/tlsbridge -stores system 2>&1) || fail "ca uninstall -stores system" "$out"
	expect "ca uninstall: no longer trusted" "$(/usr/bin/tlsbridge ca info -ca-dir /var/lib/tlsbridge 2>&1)" 'system: no'
else
	fail "dpkg -i (reinstall)" "$out"
fi

# 5. dpkg -P: the machine as before.
out=$(dpkg -P tlsbridge 2>&1) || fail "dpkg -P" "$out"
after=$(machine_state)
if [[ $after == "$before" ]]; then
	pass "dpkg -P: machine as before (no package, user, group, /etc/tlsbridge, /var/lib/tlsbridge)"
else
	fail "dpkg -P: machine differs from before" "$(diff <(echo "$before") <(echo "$after"))"
fi

ex_finish
