#!/bin/bash
# The container image end to end: build the root filesystem of packaging/container/Containerfile
# with packaging/container/rootfs.py (debootstrap + the Containerfile's own steps; cached under
# .cache/container/), report its size, then run tests/container/checks.py against it: arbiter as
# PID 1 under systemd-nspawn (no --boot), its HEALTHCHECK, logs on stdout, SIGTERM draining a
# request in flight, orphans reaped.
#
#   sudo tests/container/run.sh          # last line: "N passed, N failed"
#
# Needs root, debootstrap and systemd-container (scripts/test.sh installs them), and the Debian
# mirror and PyPI reachable while the image builds. Output: $ARBITER_CONTAINER_OUT (default
# .cache/container-test): each container's stdout/stderr and command line, figures.txt.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ARBITER_CONTAINER_OUT="${ARBITER_CONTAINER_OUT:-$REPO/.cache/container-test}"
rm -rf "$ARBITER_CONTAINER_OUT"
mkdir -p "$ARBITER_CONTAINER_OUT"

[ "$(id -u)" -eq 0 ] || { echo "tests/container/run.sh needs root (debootstrap, systemd-nspawn)" >&2; echo "0 passed, 1 failed"; exit 1; }

started=$(date +%s)
if ! image="$(/usr/bin/python3 "$REPO/packaging/container/rootfs.py" build)"; then
    echo "FAIL image_builds: packaging/container/rootfs.py build failed (its output is above)"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "PASS image_builds ($(( $(date +%s) - started )) s, cached steps reused)"
size="$(du -sh --apparent-size "$(readlink -f "$image/rootfs")" | cut -f1)"
echo "figure: container: root filesystem $size (du -sh --apparent-size of $(readlink -f "$image/rootfs"))" \
    | tee -a "$ARBITER_CONTAINER_OUT/figures.txt"

/usr/bin/python3 "$REPO/tests/container/checks.py" "$image" | tee "$ARBITER_CONTAINER_OUT/checks.log"
status=${PIPESTATUS[0]}
read -r passed _ failed _ < <(tail -n 1 "$ARBITER_CONTAINER_OUT/checks.log")
[[ "$passed" =~ ^[0-9]+$ && "$failed" =~ ^[0-9]+$ ]] || { passed=0; failed=1; }
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$((passed + 1)) passed, $failed failed"
[ "$failed" -eq 0 ]
