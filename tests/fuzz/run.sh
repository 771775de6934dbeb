#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, asserts on) and runs each in turn:
#   control          the control protocol's request parser (fuzz_control.c)
#   worker_channel   the worker channel: line framing, message handling, log escaping
#   metrics_request  the metrics listener's HTTP request parser
#
#   tests/fuzz/run.sh [RUNS [TARGET...]]   RUNS executions of each TARGET (default 10000000, all)
#   FUZZ_SECONDS=30 tests/fuzz/run.sh      a smoke run: 30 s split evenly across the targets
#                                          (what scripts/test.sh's fuzz-smoke stage does)
#
# Each target starts from its seeds in tests/fuzz/corpus/TARGET/ (copied: the repository's corpus
# stays as committed). Inputs go up to 16 KiB, twice the longest line any parser accepts (8 KiB
# control lines and metrics requests, 4 KiB worker channel lines), so the over-long paths run too.
# A crash leaves tests/fuzz/crash-TARGET-* (reproduce: build-fuzz/tests/fuzz/fuzz_TARGET FILE).
# One line per target with its executions and time; the last line is "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
all_targets=(control worker_channel metrics_request)
max_len=16384

runs=${1:-10000000}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  if [ ! -f "$here/fuzz_$target.c" ]; then
    echo "fuzz: no target '$target' (there is no tests/fuzz/fuzz_$target.c); targets: ${all_targets[*]}"
    echo "0 passed, 1 failed"
    exit 2
  fi
done

build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
if ! CC=clang cmake -S "$root" -B "$build" -DARBITER_FUZZ=ON -DARBITER_TESTS=OFF -DARBITER_SANITIZE=ON -DARBITER_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
   ! cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}" >/dev/null; then
  echo "fuzz: build failed (needs clang and libclang-rt-14-dev; rerun the cmake commands above to see why)"
  echo "0 passed, ${#targets[@]} failed"
  exit 1
fi

limit=(-runs="$runs")
if [ -n "${FUZZ_SECONDS:-}" ]; then
  share=$((FUZZ_SECONDS / ${#targets[@]}))
  [ "$share" -lt 1 ] && share=1
  limit=(-max_total_time="$share")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  cp "$here/corpus/$target"/* "$work/$target"/ 2>/dev/null
  log="$work/$target.log"
  started=$(date +%s)
  (cd "$here" && "$build/tests/fuzz/fuzz_$target" "${limit[@]}" -max_len="$max_len" -timeout=30 \
    -artifact_prefix="$here/crash-$target-" -print_final_stats=1 "$work/$target" > "$log" 2>&1)
  status=$?
  elapsed=$(($(date +%s) - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz $target: passed, ${executions:-?} executions in ${elapsed} s (${speed:-?}/s), 0 crashes"
  else
    failed=$((failed + 1))
    grep -E "ERROR|SUMMARY|Assertion|artifact_prefix|Test unit written" "$log" | head -n 20
    tail -n 40 "$log"
    echo "fuzz $target: FAILED (exit $status) after ${executions:-?} executions in ${elapsed} s; see crash-$target-* in tests/fuzz/"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
