#!/usr/bin/env bash
# The proof that scripts/test.sh installs everything it uses: run it (minus the e2e and pristine
# stages) in a pristine Debian 12, on a fresh clone of the committed HEAD, and pass only if it passes.
#
#   sudo tests/pristine/run.sh       # last line: the inner run's "N passed, N failed, N skipped"
#
# - The root is `debootstrap --variant=minbase bookworm` from this machine's apt sources: Debian's
#   required packages and nothing of the project's (no compiler, no Python). It is cached under
#   .cache/pristine/ (keyed by the mirror and ROOT_VERSION) and never written to: each run mounts
#   a throwaway overlay on it.
# - Into the overlay go: this machine's apt sources and pip configuration (so apt and pip inside
#   reach what they reach here), and `git clone` of HEAD. Uncommitted changes are not tested.
# - The clone's ./scripts/test.sh runs as root in `systemd-nspawn` (no --boot, the host's network),
#   with CI=true and ARBITER_TEST_SKIP="e2e pristine container" (plus the caller's ARBITER_TEST_SKIP).
# - Downloads are kept between runs (.cache/pristine/apt-archives, and pip-cache where the index
#   allows caching): a warm run does not fetch them again, but still installs every package inside.
# - Bounded: the inner run is stopped after ARBITER_PRISTINE_TIMEOUT seconds (default 3600). The
#   container and the overlay are removed on exit, and a run killed before it could clean up is
#   cleaned up by the next one.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SUITE=bookworm
# Bump when a change below should rebuild cached roots.
ROOT_VERSION=2
CACHE="${ARBITER_PRISTINE_CACHE:-$REPO/.cache/pristine}"
TIMEOUT="${ARBITER_PRISTINE_TIMEOUT:-3600}"
RUN_DIR=

say() { printf 'pristine: %s\n' "$*" >&2; }
# Every early failure ends the same way: the reason, then a last line test.sh counts as one failure.
fail() {
    say "FAILED: $*"
    echo "0 passed, 1 failed"
    exit 1
}

# unmount_and_remove DIR: undo one run directory (its overlay, then its files).
unmount_and_remove() {
    local run="$1"
    if mountpoint -q "$run/merged"; then
        umount "$run/merged" 2>/dev/null || umount -l "$run/merged" \
            || say "cannot unmount $run/merged; left in place"
    fi
    mountpoint -q "$run/merged" || rm -rf --one-file-system "$run"
}

# stop_container RUN: stop the container of a run directory, if it still runs: TERM to its
# timeout(1), which passes it on to systemd-nspawn, which kills everything in the container. The pid
# is checked to still be that timeout(1) (its command line names the run), not a recycled one.
stop_container() {
    local run="$1" pid
    pid="$(cat "$run/timeout.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    # (A zombie has an empty command line: it counts as stopped.)
    running() { { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "--directory=$run/merged"; }
    running || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 600); do running || return 0; sleep 0.1; done
    say "the container of $run did not stop within 60 s"
}

cleanup() {
    [ -z "$RUN_DIR" ] && return
    stop_container "$RUN_DIR"
    unmount_and_remove "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run directories left by a runner that was killed before its cleanup. Runs hold the cache lock for
# their whole life, so once we hold it every run directory there is is such a leftover.
remove_stale_runs() {
    local run
    for run in "$CACHE"/run.*; do
        [ -d "$run" ] || continue
        say "removing $run, left by an earlier run that did not finish"
        stop_container "$run"   # it may still run, if that runner was SIGKILLed
        unmount_and_remove "$run"
    done
}

# build_root MIRROR ROOT: debootstrap into a build directory, renamed to ROOT only when complete.
build_root() {
    local mirror="$1" root="$2" build="$CACHE/.build-${2##*/}" started
    started=$(date +%s)
    rm -rf --one-file-system "$build"
    mkdir -p "$build"
    say "debootstrap --variant=minbase $SUITE from $mirror (the mirror of this machine's apt sources)"
    if ! debootstrap --variant=minbase "$SUITE" "$build" "$mirror" > "$build.log" 2>&1; then
        tail -n 30 "$build.log" >&2
        rm -rf --one-file-system "$build"
        return 1
    fi
    rm -f "$build.log"
    # What Debian's installer writes and debootstrap does not: the machine's name and localhost.
    echo arbiter-pristine > "$build/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tarbiter-pristine\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' \
        > "$build/etc/hosts"
    # Nothing of debootstrap's downloads stays in the root: a warm cache must not pre-seed it.
    rm -f "$build"/var/cache/apt/archives/*.deb
    rm -rf "$root"
    mv "$build" "$root"
    touch "$root.complete"
    say "root built in $(( $(date +%s) - started )) s: $root"
}

main() {
    local mirror key root head merged skip started status summary passed_on
    [ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap, mount, systemd-nspawn): sudo $0"
    for tool in debootstrap systemd-nspawn git mountpoint flock timeout; do
        command -v "$tool" >/dev/null \
            || fail "$tool not found: install it with scripts/test.sh's install stage (apt-get install debootstrap systemd-container git util-linux coreutils)"
    done
    mirror="$(apt_debian_mirror "$SUITE")" \
        || fail "no apt source for Debian $SUITE on this machine (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list, *.sources): add one"
    head="$(git -C "$REPO" rev-parse HEAD)" || fail "$REPO is not a git checkout: the stage tests a clone of HEAD"
    [ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] \
        || say "note: the worktree has uncommitted changes; they are not in the clone that is tested"

    mkdir -p "$CACHE/apt-archives/partial" "$CACHE/pip-cache"
    # One run at a time per cache: the root is built once, and the download caches are shared. The
    # lock is this process's alone (fd 9 is closed for the container), so a runner that was killed
    # releases it even if its container still runs; the next run then stops that container.
    exec 9> "$CACHE/.lock"
    flock -w "$TIMEOUT" 9 || fail "another pristine run holds $CACHE/.lock for more than $TIMEOUT s"
    remove_stale_runs

    key="$(printf '%s %s %s minbase' "$ROOT_VERSION" "$SUITE" "$mirror" | sha256sum | cut -c1-12)"
    root="$CACHE/$SUITE-$key"
    if [ -f "$root.complete" ]; then
        say "root: cached ($root)"
    else
        build_root "$mirror" "$root" || fail "debootstrap failed (log above)"
    fi

    RUN_DIR="$(mktemp -d "$CACHE/run.XXXXXX")"
    mkdir -p "$RUN_DIR/upper" "$RUN_DIR/work" "$RUN_DIR/merged"
    merged="$RUN_DIR/merged"
    mount -t overlay overlay -o "lowerdir=$root,upperdir=$RUN_DIR/upper,workdir=$RUN_DIR/work" "$merged" \
        || fail "cannot mount an overlay on $root (is overlayfs available?)"

    copy_apt_configuration "$merged" || fail "cannot copy this machine's apt configuration into the root"
    pip_configuration_into "$merged" || fail "cannot copy this machine's pip configuration into the root"
    git -c safe.directory="$REPO" clone --quiet --no-hardlinks "$REPO" "$merged/srv/arbiter" \
        && git -C "$merged/srv/arbiter" checkout --quiet --detach "$head" \
        || fail "git clone of $REPO at $head failed"
    say "testing $(git -C "$REPO" log -1 --format='%h %s' "$head")"

    # e2e and container start systemd-nspawn containers of their own: they run on the host, not in here.
    skip="e2e pristine container${ARBITER_TEST_SKIP:+ $ARBITER_TEST_SKIP}"
    passed_on=(--setenv=HOME=/root --setenv=CI=true --setenv=ARBITER_TEST_SKIP="$skip")
    [ -z "${PYTEST_ARGS:-}" ] || passed_on+=(--setenv=PYTEST_ARGS="$PYTEST_ARGS")
    [ -z "${FUZZ_SECONDS:-}" ] || passed_on+=(--setenv=FUZZ_SECONDS="$FUZZ_SECONDS")
    started=$(date +%s)
    say "running ./scripts/test.sh in the container (ARBITER_TEST_SKIP=\"$skip\", limit $TIMEOUT s)"
    # --as-pid2: a stub init is PID 1 (reaps orphans, forwards signals), so test.sh and the tests run
    # with ordinary signal semantics. Without --private-network the container uses the host's network.
    # In the background, so that a signal to this script reaches cleanup() at once.
    { (
        timeout --kill-after=30 "$TIMEOUT" systemd-nspawn --quiet --register=no --keep-unit --as-pid2 \
            --console=pipe --resolv-conf=copy-host --timezone=off \
            --directory="$merged" --machine="arbiter-pristine-${RUN_DIR##*.}" --chdir=/srv/arbiter \
            --bind="$CACHE/apt-archives:/var/cache/apt/archives" --bind="$CACHE/pip-cache:/root/.cache/pip" \
            "${passed_on[@]}" "${NSPAWN_PIP_ARGS[@]}" \
            ./scripts/test.sh < /dev/null &
        echo "$!" > "$RUN_DIR/timeout.pid"
        wait "$!"
        echo "$?" > "$RUN_DIR/status"
    ) 2>&1 | tee "$RUN_DIR/inner.log"; } 9>&- &
    wait "$!"
    status="$(cat "$RUN_DIR/status" 2>/dev/null || echo 1)"
    say "inner run: $(( $(date +%s) - started )) s, exit $status"
    [ "$status" -ne 124 ] && [ "$status" -ne 137 ] \
        || fail "the inner run did not finish within $TIMEOUT s (ARBITER_PRISTINE_TIMEOUT); it was stopped"
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$RUN_DIR/inner.log" | tail -n1)"
    [ -n "$summary" ] || fail "the inner run ended (exit $status) without its summary line (see the output above)"
    echo "$summary"
    [ "$status" -eq 0 ]
}

main "$@"
