#!/usr/bin/env bash
# Builds and runs the control-protocol fuzzer (libFuzzer + ASan + UBSan, clang).
#   tests/fuzz/run.sh [RUNS]        RUNS executions (default 10000000)
#   FUZZ_SECONDS=30 tests/fuzz/run.sh   a time-bounded smoke run (what scripts/test.sh does)
# A crash leaves crash-* files in tests/fuzz/ and a non-zero exit. The last line is
# "1 passed, 0 failed" or "0 passed, 1 failed" for scripts/test.sh's total.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-10000000}
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
if ! CC=clang cmake -S "$root" -B "$build" -DARBITER_FUZZ=ON -DARBITER_TESTS=OFF -DARBITER_SANITIZE=ON -DARBITER_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || ! cmake --build "$build" --target fuzz_control -j2 >/dev/null; then
  echo "fuzz: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/corpus/* "$work"/
cd "$here"
limit=(-runs="$runs")
[ -n "${FUZZ_SECONDS:-}" ] && limit=(-max_total_time="$FUZZ_SECONDS")
"$build/tests/fuzz/fuzz_control" "${limit[@]}" -max_len=512 -print_final_stats=1 "$work" > "$work/fuzz.log" 2>&1
status=$?
grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY" "$work/fuzz.log"
if [ "$status" -eq 0 ]; then
  echo "1 passed, 0 failed"
else
  tail -n 40 "$work/fuzz.log"
  echo "0 passed, 1 failed"
fi
exit "$status"
