#!/usr/bin/env bash
# Fresh Debian 12 → every test of arbiter: installs what is missing, builds the normal and the
# ASan+UBSan trees, then runs the stages below in order and stops at the first that fails.
#
#   install · build · build-asan · unit · unit-valgrind · unit-asan · shim · integration · shim-lowest
#   · pristine · e2e · container · fuzz-smoke
#
# The last line of output is always the total over every stage that ran, counted from the tools'
# own reports (check's "Checks: N, Failures: F, Errors: E" lines, pytest's JUnit XML, a runner's
# own "N passed, N failed" line):
#
#   N passed, N failed, N skipped
#
# The unit tests run three times (plain, valgrind, ASan) and are counted each time. The pristine
# stage runs this script (minus e2e, pristine and container) again inside a pristine Debian 12
# container, and its inner total is added as it is: those tests ran a second time, on a second
# machine. A stage that fails without a failed test to show for it (a build error, a crash, a leak
# report) counts as one failure.
#
# Environment:
#   CI=true                      never prompt (sudo -n)
#   ARBITER_TEST_SKIP="A B"      do not run these stages (reported as skipped); e.g. "e2e pristine
#                                container",
#                                which is what the pristine stage runs inside its container
#   ARBITER_TEST_ONLY="A B"      run only these stages (install is always run first)
#   PYTEST_ARGS                  extra pytest arguments for the integration stage
#   FUZZ_SECONDS                 the fuzz-smoke stage's length (30)
#   ARBITER_PRISTINE_TIMEOUT     the pristine stage's inner run limit in seconds (tests/pristine/run.sh)
# Logs: .cache/test-logs/. Every program a stage runs is installed by the install stage
# (TEST_PACKAGES below): nothing relies on what happens to be on the machine.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

LOG_DIR="$REPO/.cache/test-logs"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# Every program a stage runs, by the stage that needs it (Debian 12 packages only).
TEST_PACKAGES=(
    "${BUILD_PACKAGES[@]}"            # build: gcc, cmake/ctest/cpack, pkg-config, check; python3 + venv
    valgrind                          # unit-valgrind, integration (test_valgrind)
    wrk                               # shim (drain under load)
    prometheus                        # integration (test_metrics: prometheus, promtool)
    passwd util-linux procps          # integration (groupadd/groupdel, setpriv), e2e (nsenter, pgrep)
    clang libclang-rt-14-dev          # fuzz-smoke (libFuzzer)
    git debootstrap debian-archive-keyring systemd-container   # pristine, e2e (debootstrap, systemd-nspawn)
    dpkg-dev                          # e2e (dpkg-shlibdeps for the .deb)
)
export ARBITER_BIN="$REPO/build/arbiter"
export ARBITER_TEST_PYTHON="$VENV/bin/python"
APPS_VENV="$REPO/.venv-apps"
export ARBITER_APPS_PYTHON="$APPS_VENV/bin/python"
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

# The Python programs the tests run (pytest, kubernetes-validate, mypy's checks, …) come from
# tests/requirements.txt, installed into .venv here; the real-apps matrix's third-party packages
# (numpy, pandas, scikit-learn, datasette, …) from tests/requirements-apps.txt into .venv-apps, the
# workers' --python in tests/integration/test_real_apps.py.
stage_install() {
    ensure_apt_packages "${TEST_PACKAGES[@]}" || return 1
    ensure_venv "$REPO/tests/requirements.txt" || return 1
    ensure_venv "$REPO/tests/requirements-apps.txt" "$APPS_VENV"
}

# The build also holds the structure to its rules: no cycle among the supervisor's files, no function
# over 80 lines.
stage_build() {
    build_tree build && "$SYSTEM_PYTHON" "$REPO/scripts/cycles.py" && "$SYSTEM_PYTHON" "$REPO/scripts/function_lengths.py"
}

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

# The e2e, pristine and fuzz runners report their own totals with a last line "N passed, N failed
# [, N skipped]"; a runner that has none is counted as one test, passed or failed by its exit code.
# run_runner NAME COMMAND...
run_runner() {
    local output="$LOG_DIR/runner-$1.log" status
    shift
    "$@" 2>&1 | tee "$output"
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
    # ARBITER_TEST_PYTHON is the interpreter the harness starts workers with: the lowest one too.
    (cd "$REPO/worker-shim" && ARBITER_TEST_PYTHON="$lowest/bin/python" "$lowest/bin/python" -m pytest tests \
        -p no:cacheprovider --timeout=240 -q --junitxml="$LOG_DIR/shim-lowest.xml") || status=1
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

# tests/pristine/run.sh: this script, minus e2e, pristine and container, in a pristine Debian 12
# container (debootstrap, cached under .cache/pristine) holding a fresh clone of the committed HEAD.
stage_pristine() { run_runner pristine as_root "$REPO/tests/pristine/run.sh"; }

# The e2e runner needs root: systemd-nspawn, mounts.
stage_e2e() { run_runner e2e as_root "$REPO/tests/e2e/run.sh"; }

# The container image (packaging/container/Containerfile), its root built by rootfs.py from the
# same steps and run with systemd-nspawn, arbiter as PID 1 (tests/container/run.sh; needs root).
stage_container() {
    ensure_apt_packages debootstrap systemd-container util-linux || return 1
    run_runner container as_root "$REPO/tests/container/run.sh"
}

stage_fuzz_smoke() { FUZZ_SECONDS="${FUZZ_SECONDS:-30}" run_runner fuzz "$REPO/tests/fuzz/run.sh"; }

# The stages, in order: NAME FUNCTION. A new stage is one row here and one stage_ function above.
STAGES=(
    "install        stage_install"
    "build          stage_build"
    "build-asan     stage_build_asan"
    "unit           stage_unit"
    "unit-valgrind  stage_unit_valgrind"
    "unit-asan      stage_unit_asan"
    "shim           stage_shim"
    "integration    stage_integration"
    "shim-lowest    stage_shim_lowest"
    "pristine       stage_pristine"
    "e2e            stage_e2e"
    "container      stage_container"
    "fuzz-smoke     stage_fuzz_smoke"
)

# ARBITER_TEST_SKIP / ARBITER_TEST_ONLY name stages; a name that is not one is an error, not a no-op.
stage_names() { local row; for row in "${STAGES[@]}"; do echo "${row%% *}"; done; }
check_stage_names() {
    local variable="$1" name
    for name in ${!variable:-}; do
        stage_names | grep -qxF -- "$name" && continue
        log "error: $variable names an unknown stage '$name'; the stages are: $(stage_names | tr '\n' ' ')"
        return 1
    done
}
# stage_selected NAME: 0 if NAME is to run, else prints why not.
stage_selected() {
    if [[ " ${ARBITER_TEST_SKIP:-} " == *" $1 "* ]]; then
        echo "ARBITER_TEST_SKIP names it"
        return 1
    fi
    if [ -n "${ARBITER_TEST_ONLY:-}" ] && [ "$1" != install ] && [[ " $ARBITER_TEST_ONLY " != *" $1 "* ]]; then
        echo "ARBITER_TEST_ONLY does not name it"
        return 1
    fi
}
if ! check_stage_names ARBITER_TEST_SKIP || ! check_stage_names ARBITER_TEST_ONLY; then
    TOTAL_FAILED=1
    print_summary
    exit 2
fi

log "test.sh: $(nproc) cores, CI=${CI:-false}, logs in ${LOG_DIR#"$REPO"/}${ARBITER_TEST_SKIP:+, skipping: $ARBITER_TEST_SKIP}"
for row in "${STAGES[@]}"; do
    read -r name function <<< "$row"
    if reason="$(stage_selected "$name")"; then
        run_stage "$name" "$function"
    else
        skip_stage "$name" "$reason"
    fi
done
print_summary
