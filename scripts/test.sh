#!/usr/bin/env bash
# Fresh Debian 12 → every test of arbiter: installs what is missing, builds the normal and the
# ASan+UBSan trees, then runs the stages below in order and stops at the first that fails.
#
#   install · build · build-asan · unit · unit-valgrind · unit-asan · shim · integration · shim-lowest · e2e · container · fuzz-smoke
#
# The last line of output is always the total over every stage that ran, counted from the tools'
# own reports (check's "Checks: N, Failures: F, Errors: E" lines, pytest's JUnit XML, a runner's
# own "N passed, N failed" line):
#
#   N passed, N failed, N skipped
#
# The unit tests run three times (plain, valgrind, ASan) and are counted each time. A stage that
# fails without a failed test to show for it (a build error, a crash, a leak report) counts as one
# failure. Logs: .cache/test-logs/. CI=true: never prompt. Extra pytest arguments: PYTEST_ARGS.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

LOG_DIR="$REPO/.cache/test-logs"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

TEST_PACKAGES=("${BUILD_PACKAGES[@]}" valgrind clang libclang-rt-14-dev prometheus)
export ARBITER_BIN="$REPO/build/arbiter"
export ARBITER_TEST_PYTHON="$VENV/bin/python"
export CK_VERBOSITY=normal          # check prints its "Checks: N, Failures: F" line, which we count

TOTAL_PASSED=0 TOTAL_FAILED=0 TOTAL_SKIPPED=0
REPORT=()
STAGE_NUMBER=0

print_summary() {
    log ""
    log "stages:"
    local line
    for line in "${REPORT[@]}"; do log "  $line"; done
    # The contract: this is the last line, and it is true.
    echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
}

# run_stage NAME FUNCTION: run FUNCTION with its output shown and saved, time it, add the counts it
# left in $COUNTS (if any) to the totals, and stop everything if it failed.
run_stage() {
    local name="$1" function="$2" started status elapsed passed=0 failed=0 skipped=0 counted=""
    STAGE_NUMBER=$((STAGE_NUMBER + 1))
    STAGE_LOG="$LOG_DIR/$(printf '%02d' "$STAGE_NUMBER")-$name.log"
    COUNTS="$LOG_DIR/$name.counts"
    log ""
    log "==> [$name] started $(date '+%H:%M:%S')"
    started=$(date +%s)
    "$function" 2>&1 | tee "$STAGE_LOG"
    status=${PIPESTATUS[0]}
    elapsed=$(( $(date +%s) - started ))
    if [ -s "$COUNTS" ]; then
        read -r passed failed skipped < "$COUNTS"
        counted=" — $passed passed, $failed failed, $skipped skipped"
    fi
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
        counted="$counted (the stage itself failed: counted as 1 failure)"
    fi
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
    if [ "$status" -eq 0 ]; then
        REPORT+=("ok      $name (${elapsed}s)$counted")
        log "<== [$name] ok in ${elapsed}s$counted"
        return 0
    fi
    REPORT+=("FAILED  $name (${elapsed}s, exit $status)$counted — log: ${STAGE_LOG#"$REPO"/}")
    log "<== [$name] FAILED (exit $status) in ${elapsed}s$counted"
    log ""
    log "test.sh: stopping at the first failing stage: $name (full log: ${STAGE_LOG#"$REPO"/})"
    print_summary
    exit 1
}

# skip_stage NAME REASON: say loudly that a stage did not run and why.
skip_stage() {
    REPORT+=("SKIPPED $1: $2")
    log ""
    log "==> [$1] SKIPPED: $2"
}

# An optional stage's runner: DIR/run or DIR/run.sh, executable.
find_runner() {
    local candidate
    for candidate in "$1/run" "$1/run.sh"; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

stage_install() {
    ensure_apt_packages "${TEST_PACKAGES[@]}" || return 1
    ensure_venv "$REPO/tests/requirements.txt"
}

stage_build() { build_tree build; }

stage_build_asan() { build_tree build-asan -DARBITER_SANITIZE=ON; }

# ctest -V prints every test's output prefixed with its number, which count_results.py attributes.
run_ctest() {
    local dir="$1" output="$LOG_DIR/ctest-$1.log" status
    ctest --test-dir "$REPO/$dir" -V --timeout 300 --parallel "$(nproc)" 2>&1 | tee "$output"
    status=${PIPESTATUS[0]}
    "$SYSTEM_PYTHON" "$REPO/scripts/count_results.py" ctest "$output" > "$COUNTS" || return 1
    return "$status"
}

stage_unit() { run_ctest build; }

stage_unit_valgrind() {
    # check forks a child per test by default; valgrind should see the tests in its own process.
    CK_FORK=no "$SYSTEM_PYTHON" "$REPO/scripts/ctest_under.py" "$REPO/build" "$COUNTS" \
        valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1
}

stage_unit_asan() {
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
        run_ctest build-asan
}

stage_integration() {
    local status extra=()
    # PYTEST_ARGS is shell-quoted words, e.g. PYTEST_ARGS="-k 'unix or ipv6' -x"
    eval "extra=(${PYTEST_ARGS:-})"
    "$VENV/bin/python" -m pytest "$REPO/tests/integration" -p no:cacheprovider --timeout=240 \
        -rfEs --junitxml="$LOG_DIR/integration.xml" "${extra[@]}"
    status=$?
    if [ -s "$LOG_DIR/integration.xml" ]; then
        "$SYSTEM_PYTHON" "$REPO/scripts/count_results.py" junit "$LOG_DIR/integration.xml" > "$COUNTS" || return 1
    fi
    return "$status"
}

# e2e and fuzz runners report their own totals with a last line "N passed, N failed"; a runner
# that does not is counted as one test, passed or failed by its exit code.
run_runner() {
    local runner="$1" output="$LOG_DIR/runner-$(basename "$(dirname "$1")").log" status
    "$runner" 2>&1 | tee "$output"
    status=${PIPESTATUS[0]}
    if ! "$SYSTEM_PYTHON" "$REPO/scripts/count_results.py" summary "$output" > "$COUNTS" 2>/dev/null; then
        if [ "$status" -eq 0 ]; then echo "1 0 0" > "$COUNTS"; else echo "0 1 0" > "$COUNTS"; fi
    fi
    return "$status"
}

# The worker shim's own tests: the shim started by a Python harness, without the arbiter.
stage_shim() {
    local status
    (cd "$REPO/worker-shim" && "$VENV/bin/python" -m pytest tests -p no:cacheprovider --timeout=240 -q \
        --junitxml="$LOG_DIR/shim.xml")
    status=$?
    if [ -s "$LOG_DIR/shim.xml" ]; then
        "$SYSTEM_PYTHON" "$REPO/scripts/count_results.py" junit "$LOG_DIR/shim.xml" > "$COUNTS" || return 1
    fi
    return "$status"
}

# The shim's tests and the zero-drop tests again, against the oldest uvicorn the shim supports
# (.venv-lowest from tests/requirements-lowest.txt); the stages shim and integration ran them
# against the latest. Both test sets run even if the first fails; their counts are added up.
stage_shim_lowest() {
    local lowest="$REPO/.venv-lowest" status=0 xml passed failed skipped sum=(0 0 0)
    ensure_venv "$REPO/tests/requirements-lowest.txt" "$lowest" || return 1
    "$lowest/bin/python" -c 'import uvicorn; print("shim-lowest: uvicorn", uvicorn.__version__)'
    (cd "$REPO/worker-shim" && "$lowest/bin/python" -m pytest tests -p no:cacheprovider --timeout=240 -q \
        --junitxml="$LOG_DIR/shim-lowest.xml") || status=1
    ARBITER_TEST_PYTHON="$lowest/bin/python" "$lowest/bin/python" -m pytest "$REPO/tests/integration/test_zero_drop.py" \
        -p no:cacheprovider --timeout=240 -rfEs --junitxml="$LOG_DIR/zero-drop-lowest.xml" || status=1
    for xml in "$LOG_DIR/shim-lowest.xml" "$LOG_DIR/zero-drop-lowest.xml"; do
        [ -s "$xml" ] || continue
        read -r passed failed skipped < <("$SYSTEM_PYTHON" "$REPO/scripts/count_results.py" junit "$xml") || return 1
        sum=($((sum[0] + passed)) $((sum[1] + failed)) $((sum[2] + skipped)))
    done
    echo "${sum[*]}" > "$COUNTS"
    return "$status"
}

stage_e2e() { run_runner "$E2E_RUNNER"; }

# The container image (packaging/container/Containerfile), its root built by rootfs.py from the
# same steps and run with systemd-nspawn, arbiter as PID 1 (tests/container/run.sh).
stage_container() {
    ensure_apt_packages debootstrap systemd-container util-linux || return 1
    run_runner "$REPO/tests/container/run.sh"
}
stage_fuzz_smoke() { FUZZ_SECONDS="${FUZZ_SECONDS:-30}" run_runner "$FUZZ_RUNNER"; }

log "test.sh: $(nproc) cores, CI=${CI:-false}, logs in ${LOG_DIR#"$REPO"/}"
run_stage install stage_install
run_stage build stage_build
run_stage build-asan stage_build_asan
run_stage unit stage_unit
run_stage unit-valgrind stage_unit_valgrind
run_stage unit-asan stage_unit_asan
run_stage shim stage_shim
run_stage integration stage_integration
run_stage shim-lowest stage_shim_lowest
if E2E_RUNNER="$(find_runner "$REPO/tests/e2e")"; then
    run_stage e2e stage_e2e
else
    skip_stage e2e "tests/e2e has no runner yet (expected an executable tests/e2e/run or run.sh)"
fi
run_stage container stage_container
if FUZZ_RUNNER="$(find_runner "$REPO/tests/fuzz")"; then
    run_stage fuzz-smoke stage_fuzz_smoke
else
    skip_stage fuzz-smoke "tests/fuzz has no runner yet (expected an executable tests/fuzz/run or run.sh)"
fi
print_summary
