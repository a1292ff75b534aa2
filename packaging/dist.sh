#!/usr/bin/env bash
# dist.sh OS/ARCH...: build tlsbridge for each target with CGO_ENABLED=0 and
# pack it with README.md, LICENSE, config.toml and docs/ into
# $DIST_DIR/tlsbridge_<version>_<os>_<arch>.tar.gz (.zip for Windows), then
# write $DIST_DIR/SHA256SUMS over every archive. `make dist` runs it with
# VERSION, LDFLAGS (version, commit and date for "tlsbridge version") and
# GO from the Makefile. Archives are reproducible for one SOURCE_DATE_EPOCH:
# sorted names, owner 0, fixed mtimes, gzip without a timestamp.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?set VERSION (make dist does)}" "${LDFLAGS:?set LDFLAGS (make dist does)}"
GO=${GO:-go}
DIST_DIR=${DIST_DIR:-dist}
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
(($# > 0)) || { echo "usage: dist.sh OS/ARCH..." >&2; exit 2; }

# A leading v is dropped from file names, as release tools do: v1.2.3 ships
# as tlsbridge_1.2.3_linux_amd64.tar.gz.
name_version=${VERSION#v}
mkdir -p "$DIST_DIR"
DIST_DIR=$(cd "$DIST_DIR" && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/tlsbridge-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT

archives=()
for target in "$@"; do
	os=${target%/*} arch=${target#*/}
	[[ -n $os && -n $arch && $target == */* ]] || { echo "dist.sh: $target: want OS/ARCH, e.g. linux/amd64" >&2; exit 2; }
	base=tlsbridge_${name_version}_${os}_${arch}
	dir=$stage/$base
	exe=tlsbridge
	[[ $os == windows ]] && exe=tlsbridge.exe
	mkdir -p "$dir/docs"
	echo "dist: $target"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$dir/$exe" ./cmd/tlsbridge
	cp README.md LICENSE config.toml "$dir/"
	cp docs/*.md "$dir/docs/"
	find "$dir" -exec touch -h -d "@$EPOCH" {} +
	if [[ $os == windows ]]; then
		out=$base.zip
		rm -f "$DIST_DIR/$out"
		# -X: no uid/gid extra fields; names sorted for a stable order.
		(cd "$stage" && find "$base" -print | LC_ALL=C sort | zip -q -X -D "$DIST_DIR/$out" -@)
	else
		out=$base.tar.gz
		tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" -cf - "$base" |
			gzip -n -9 >"$DIST_DIR/$out"
	fi
	archives+=("$out")
done

(cd "$DIST_DIR" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "dist: wrote ${archives[*]} and SHA256SUMS in $DIST_DIR"
