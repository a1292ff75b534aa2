#!/usr/bin/env bash
# Run every example (examples/*/run.sh), each in its own process, and print
# one closing line: "examples: N passed, N failed". Exits non-zero when any
# check failed or any example died. `make examples` (and `make test`) builds
# bin/tlsbridge first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x bin/tlsbridge ]]; then
	echo "examples: bin/tlsbridge not found; run 'make build' first (make examples and make test do)" >&2
	echo "examples: 0 passed, 1 failed"
	exit 1
fi

passed=0 failed=0 skipped=0 start=$SECONDS
declare -a broken=()
# Each example's output streams through and is kept here for its summary.
outfile=$(mktemp "${TMPDIR:-/tmp}/tlsbridge-examples.XXXXXX")
trap 'rm -f "$outfile"' EXIT
for script in examples/*/run.sh; do
	name=$(basename "$(dirname "$script")")
	echo "=== $name"
	t0=$SECONDS
	rc=0
	bash "$script" 2>&1 | tee "$outfile" || rc=$?
	out=$(<"$outfile")
	summary=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" <<<"$out" | tail -n 1 || true)
	if [[ -n $summary ]]; then
		p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$summary")
		f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$summary")
		passed=$((passed + p))
		failed=$((failed + f))
		if ((rc != 0 && f == 0)); then
			failed=$((failed + 1))
		fi
	elif ((rc == 0)) && grep -q "^SKIP $name:" <<<"$out"; then
		skipped=$((skipped + 1))
	else
		echo "FAIL $name: exited with status $rc before its closing line"
		failed=$((failed + 1))
	fi
	((rc == 0)) || broken+=("$name")
	echo "=== $name: $((SECONDS - t0)) s"
done 2>&1

echo "examples took $((SECONDS - start)) s${broken[*]:+; failed: ${broken[*]}}"
if ((skipped > 0)); then
	echo "examples: $passed passed, $failed failed, $skipped skipped"
else
	echo "examples: $passed passed, $failed failed"
fi
((failed == 0))
