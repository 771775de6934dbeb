#!/usr/bin/env bash
# Builds and runs the control-protocol fuzzer. Usage: tests/fuzz/run.sh [RUNS] (default 10000000)
# A crash leaves crash-* files in tests/fuzz/ and a non-zero exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-10000000}
build="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$build" -DARBITER_FUZZ=ON -DARBITER_TESTS=OFF -DARBITER_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_control -j2 >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/corpus/* "$work"/
cd "$here"
"$build/tests/fuzz/fuzz_control" -runs="$runs" -max_len=512 -print_final_stats=1 "$work" 2>&1 | tail -n 25
