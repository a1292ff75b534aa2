#!/usr/bin/env bash
# dist: `make dist` builds versioned release archives (.tar.gz, .zip for
# Windows) and SHA256SUMS; the Linux archive unpacks to a tlsbridge that
# prints the version, commit and build date it was built with; the same
# SOURCE_DATE_EPOCH gives byte-identical archives. Builds two targets (this
# machine's Linux one and windows/amd64), not all five. See README.md.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ex_init dist
need go golang-go
need make make
need git git
need zip zip
need unzip unzip
need sha256sum coreutils

cd "$REPO_DIR"
ARCH=$(go env GOARCH)
EPOCH=1764892800 # 2025-12-05T00:00:00Z
WANT_DATE=2025-12-05T00:00:00Z
# What the Makefile puts into the binary.
VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT=$(git rev-parse HEAD)
TARGETS="linux/$ARCH windows/amd64"

dist() { # dist DIR: make dist for $TARGETS into DIR
	SOURCE_DATE_EPOCH=$EPOCH make -s dist TARGETS="$TARGETS" DIST_DIR="$1" 2>&1
}

# 1. The archives and their checksums.
if out=$(dist "$WORK/dist"); then
	pass "make dist TARGETS=\"$TARGETS\""
else
	die "make dist" "$out"
fi
base=tlsbridge_${VERSION#v}
tgz=${base}_linux_$ARCH.tar.gz
zipf=${base}_windows_amd64.zip
for f in "$tgz" "$zipf" SHA256SUMS; do
	if [[ -s $WORK/dist/$f ]]; then pass "dist has $f"; else fail "dist has $f" "$(ls -l "$WORK/dist")"; fi
done
out=$(cd "$WORK/dist" && sha256sum -c SHA256SUMS 2>&1) && pass "sha256sum -c SHA256SUMS: $(tr '\n' ' ' <<<"$out")" || fail "sha256sum -c SHA256SUMS" "$out"
sums=$(cat "$WORK/dist/SHA256SUMS")
expect "SHA256SUMS lists $tgz" "$sums" "^[0-9a-f]{64}  $tgz\$"
expect "SHA256SUMS lists $zipf" "$sums" "^[0-9a-f]{64}  $zipf\$"

# 2. The Linux archive: unpack as a user would, run tlsbridge version.
mkdir -p "$WORK/unpacked"
tar -C "$WORK/unpacked" -xzf "$WORK/dist/$tgz"
dir=$WORK/unpacked/${base}_linux_$ARCH
for f in tlsbridge README.md LICENSE config.toml docs/trust.md; do
	[[ -e $dir/$f ]] && pass "the archive has $f" || fail "the archive has $f" "$(tar tzf "$WORK/dist/$tgz")"
done
if out=$("$dir/tlsbridge" version 2>&1); then
	expect "tlsbridge version names the version $VERSION" "$out" "^tlsbridge $VERSION "
	expect "tlsbridge version names the commit" "$out" "commit $COMMIT"
	expect "tlsbridge version names the build date (SOURCE_DATE_EPOCH)" "$out" "built $WANT_DATE"
	expect "tlsbridge version: linux/$ARCH" "$out" "linux/$ARCH\)$"
else
	fail "tlsbridge version from the archive" "$out"
fi
out=$("$dir/tlsbridge" --version 2>&1) || true
expect "tlsbridge --version prints the same" "$out" "^tlsbridge $VERSION .*commit $COMMIT"
if out=$(cd "$WORK" && "$dir/tlsbridge" ca init -ca-dir "$WORK/ca" 2>&1); then
	pass "the unpacked tlsbridge runs ca init"
else
	fail "the unpacked tlsbridge runs ca init" "$out"
fi

# 3. The Windows archive: a PE binary named tlsbridge.exe.
mkdir -p "$WORK/win"
unzip -q "$WORK/dist/$zipf" -d "$WORK/win"
exe=$WORK/win/${base}_windows_amd64/tlsbridge.exe
if [[ -f $exe && $(head -c 2 "$exe") == MZ ]]; then
	pass "the Windows zip has tlsbridge.exe (a PE file)"
else
	fail "the Windows zip has tlsbridge.exe (a PE file)" "$(unzip -l "$WORK/dist/$zipf")"
fi
if grep -aq "$COMMIT" "$exe"; then pass "tlsbridge.exe carries the commit"; else fail "tlsbridge.exe carries the commit" ""; fi

# 4. Reproducible: the same SOURCE_DATE_EPOCH, the same bytes.
if out=$(dist "$WORK/dist2"); then
	if cmp -s "$WORK/dist/SHA256SUMS" "$WORK/dist2/SHA256SUMS"; then
		pass "a second make dist with the same SOURCE_DATE_EPOCH: identical archives"
	else
		fail "a second make dist: identical archives" "$(diff "$WORK/dist/SHA256SUMS" "$WORK/dist2/SHA256SUMS")"
	fi
else
	fail "second make dist" "$out"
fi

ex_finish
