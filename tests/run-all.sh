#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every test of the suite: unit tests (cmocka), integration tests
# (pytest against the real binaries, real Redis and PostgreSQL) and a short
# run of every fuzz target. Called by `make check`; exits non-zero when
# anything failed or could not run.
#   tests/run-all.sh BUILD_DIR FUZZ_DIR
set -u

B=${1:-build-asan}
FUZZ=${2:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

passed=0
failed=0
failures=""

note() { printf '\n=== %s\n' "$*"; }
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); failures="$failures $1"; echo "FAILED: $1"; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

note "unit tests ($B/tests)"
units=$(ls "$B"/tests/test_* 2>/dev/null)
if [ -z "$units" ]; then
	bad "unit-tests-missing"
fi
for t in $units; do
	[ -x "$t" ] || continue
	echo "--- $t"
	if timeout 300 "$t"; then ok; else bad "$(basename "$t")"; fi
done

note "integration tests (pytest)"
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import pytest' 2>/dev/null; then
	bad "pytest-missing(run deploy/install-deps.sh)"
else
	P2PCDN_BIN_DIR="$root/$B/bin" P2PCDN_BIN="$root/$B/bin/route-server" timeout 1800 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		tests/integration
	rc=$?
	if [ $rc -eq 0 ]; then ok; else bad "pytest(exit $rc)"; fi
fi

note "fuzz smoke (${FUZZ_SECONDS}s each)"
fuzzers=$(ls "$FUZZ"/fuzz_* 2>/dev/null)
if [ -z "$fuzzers" ]; then
	bad "fuzzers-missing"
fi
for f in $fuzzers; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus="$root/tests/fuzz/corpus/$name"
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
	echo "--- $name"
	if "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=0 "$work" >"$work.log" 2>&1; then
		ok
	else
		tail -40 "$work.log"
		bad "$name"
	fi
	rm -rf "$work" "$work.log"
done

note "summary"
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
