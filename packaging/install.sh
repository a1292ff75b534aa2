#!/bin/sh
# make install / make uninstall (see docs/install.md):
#
#   install.sh install BINARY    binary, unit, sysusers.d entry, and the
#                                default config unless one is already there
#   install.sh uninstall         all of those but the config, the CA and
#                                the user, which it names
#
# Paths come from the environment, as make passes them: DESTDIR (a staging
# root for packagers: nothing outside it is touched, no user is created),
# PREFIX (/usr/local), BINDIR ($PREFIX/bin), SYSCONFDIR (/etc), UNITDIR
# ($PREFIX/lib/systemd/system), SYSUSERSDIR ($PREFIX/lib/sysusers.d) and
# DOCDIR ($PREFIX/share/doc/tlsbridge: README.md, install.md, LICENSE);
# systemd searches both /usr/local/lib and /usr/lib for units and sysusers.
set -eu
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/tlsbridge}
DESTDIR=${DESTDIR:-}
D=$DESTDIR

# on_live_system: true when installing into / (no DESTDIR) as root, the
# only case where creating a user or telling systemd makes sense.
on_live_system() { [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ]; }

systemd_reload() {
	if on_live_system && [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
}

case ${1:-} in
install)
	bin=${2:?usage: install.sh install BINARY}
	install -D -m 0755 "$bin" "$D$BINDIR/tlsbridge"
	# The unit names the binary and the config where this install puts them.
	mkdir -p "$D$UNITDIR"
	sed -e "s#/usr/bin/tlsbridge#$BINDIR/tlsbridge#" \
		-e "s#/etc/tlsbridge/#$SYSCONFDIR/tlsbridge/#" \
		-e "s#/usr/share/doc/tlsbridge/#$DOCDIR/#g" \
		packaging/tlsbridge.service >"$D$UNITDIR/tlsbridge.service"
	chmod 0644 "$D$UNITDIR/tlsbridge.service"
	install -D -m 0644 packaging/tlsbridge.sysusers "$D$SYSUSERSDIR/tlsbridge.conf"
	install -D -m 0644 -t "$D$DOCDIR" README.md docs/install.md LICENSE
	if [ -e "$D$SYSCONFDIR/tlsbridge/config.toml" ]; then
		echo "install: kept $D$SYSCONFDIR/tlsbridge/config.toml (the new default is config.toml in the source tree)"
	else
		install -D -m 0644 config.toml "$D$SYSCONFDIR/tlsbridge/config.toml"
	fi
	if on_live_system; then
		if ! getent passwd tlsbridge >/dev/null; then
			if command -v systemd-sysusers >/dev/null 2>&1; then
				systemd-sysusers "$SYSUSERSDIR/tlsbridge.conf"
			else
				useradd --system --user-group --home-dir /var/lib/tlsbridge --no-create-home \
					--shell /usr/sbin/nologin --comment "tlsbridge proxy" tlsbridge
			fi
		fi
		install -d -o tlsbridge -g tlsbridge -m 0700 /var/lib/tlsbridge
	fi
	systemd_reload
	echo "install: $D$BINDIR/tlsbridge, $D$UNITDIR/tlsbridge.service, $D$SYSCONFDIR/tlsbridge/config.toml"
	echo "install: next: edit $SYSCONFDIR/tlsbridge/config.toml, then systemctl enable --now tlsbridge;" \
		"the CA is created in /var/lib/tlsbridge on the first start: trust it with tlsbridge ca install -ca-dir /var/lib/tlsbridge"
	;;
uninstall)
	if on_live_system && [ -d /run/systemd/system ]; then
		systemctl disable --now tlsbridge.service 2>/dev/null || true
	fi
	rm -f "$D$BINDIR/tlsbridge" "$D$UNITDIR/tlsbridge.service" "$D$SYSUSERSDIR/tlsbridge.conf"
	rm -rf "$D$DOCDIR"
	systemd_reload
	echo "uninstall: removed $D$BINDIR/tlsbridge, $D$UNITDIR/tlsbridge.service, $D$SYSUSERSDIR/tlsbridge.conf, $D$DOCDIR"
	echo "uninstall: kept $D$SYSCONFDIR/tlsbridge/ (your config), /var/lib/tlsbridge/ (the CA; if you trusted it, run tlsbridge ca uninstall -ca-dir /var/lib/tlsbridge before make uninstall) and the tlsbridge user; remove them by hand"
	;;
*)
	echo "usage: install.sh install BINARY | uninstall" >&2
	exit 2
	;;
esac
