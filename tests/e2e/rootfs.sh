#!/bin/bash
# Build (once) the Debian 12 root the end-to-end tests boot with systemd-nspawn, and print its path.
#
# The root is expensive (debootstrap + a venv from PyPI: a few minutes) and never changes between
# runs, so it is cached under $ARBITER_E2E_CACHE (default /var/cache/arbiter-e2e), keyed by a hash
# of the package list, the mirror, ROOTFS_VERSION and the example app's requirements: change one and
# the next run builds a new root. A build goes to .build-* and is renamed into place only when it
# is complete, so an interrupted build is never mistaken for a cached one (and resumes after
# debootstrap). Tests never write into the cached root: run.sh mounts an overlay on it per run.
#
# Needs: root, debootstrap, systemd-nspawn (apt-get install debootstrap systemd-container), and this
# machine's apt source for Debian 12 and its pip index reachable (only while building).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$REPO/scripts/lib.sh"
CACHE="${ARBITER_E2E_CACHE:-/var/cache/arbiter-e2e}"
SUITE=bookworm
# The mirror apt uses on this machine (its sources, one-line or deb822); ARBITER_E2E_MIRROR overrides.
MIRROR="${ARBITER_E2E_MIRROR:-$(apt_debian_mirror "$SUITE" || true)}"
[ -n "$MIRROR" ] || { printf 'rootfs: no apt source for Debian %s on this machine (/etc/apt/sources.list, /etc/apt/sources.list.d/): add one, or set ARBITER_E2E_MIRROR\n' "$SUITE" >&2; exit 1; }

# What the tests use inside: systemd as PID 1, the runtime libraries of the .deb (so that
# `apt install ./arbiter_*.deb` needs no network), Python for the app's venv and the load
# generator, nginx and HAProxy, curl and openssl for the TLS checks.
PACKAGES=(
    systemd systemd-sysv dbus libpam-systemd
    libuv1 libjansson4
    python3 python3-venv
    nginx haproxy curl openssl ca-certificates
    iproute2 procps psmisc less
)

log() { printf 'rootfs: %s\n' "$*" >&2; }

# Bump when a change below should rebuild cached roots.
ROOTFS_VERSION=1
key="$( { echo "$ROOTFS_VERSION ${PACKAGES[*]} $MIRROR"; cat "$REPO/examples/requirements.txt"; } | sha256sum | cut -c1-12)"
root="$CACHE/$SUITE-$key"
if [ -f "$root/.arbiter-e2e-complete" ]; then
    log "cached: $root"
    printf '%s\n' "$root"
    exit 0
fi

command -v debootstrap >/dev/null || { log "debootstrap not found: apt-get install debootstrap"; exit 1; }
command -v systemd-nspawn >/dev/null || { log "systemd-nspawn not found: apt-get install systemd-container"; exit 1; }

mkdir -p "$CACHE"
# The build directory is named after the key too, and each finished stage leaves a marker in it, so
# a run interrupted after debootstrap (the slow part) resumes from there.
build="$CACHE/.build-$SUITE-$key"
if [ ! -f "$build/.stage-debootstrap" ]; then
    rm -rf --one-file-system "$build"
    mkdir -p "$build"
    log "debootstrap $SUITE from $MIRROR into $build (a few minutes; cached afterwards)"
    debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "$SUITE" "$build" "$MIRROR" >"$build.log" 2>&1 \
        || { tail -n 30 "$build.log" >&2; log "debootstrap failed; full log: $build.log"; exit 1; }
    rm -f "$build.log"
    touch "$build/.stage-debootstrap"
fi

# A booted container that starts fast and quietly: no getty on the console, nginx and HAProxy off
# until a test configures them, a fixed machine id so journald keeps one journal directory.
in_root() { systemd-nspawn --quiet --register=no --keep-unit -D "$build" "$@"; }
echo arbiter-e2e > "$build/etc/hostname"
printf '%s\n' "$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$build/etc/machine-id"
in_root systemctl mask console-getty.service getty@tty1.service systemd-timesyncd.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer >/dev/null 2>&1 || true
in_root systemctl disable --quiet nginx.service haproxy.service
mkdir -p "$build/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\nRateLimitBurst=0\n' > "$build/etc/systemd/journald.conf.d/e2e.conf"

# The app's venv, as a production host would have it: Debian's python3, the app's requirements
# from PyPI. The app itself and the arbiter are installed by each test run.
log "venv /srv/app/.venv from examples/requirements.txt"
mkdir -p "$build/srv/app"
cp "$REPO/examples/requirements.txt" "$build/srv/app/requirements.txt"
in_root /usr/bin/python3 -m venv /srv/app/.venv
# pip inside uses this machine's pip configuration (its files, PIP_* variables, the CA bundle or
# local directories they name), for hosts that reach packages through a proxy or a local index.
pip_configuration_into "$build"
in_root "${NSPAWN_PIP_ARGS[@]}" --setenv=PIP_DISABLE_PIP_VERSION_CHECK=1 --setenv=PIP_NO_INPUT=1 \
    /srv/app/.venv/bin/pip install -q -r /srv/app/requirements.txt
in_root /srv/app/.venv/bin/python -c 'import fastapi, uvicorn; print("fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__)' >&2

rm -rf "$build/var/cache/apt/archives/"*.deb
touch "$build/.arbiter-e2e-complete"
rm -f "$build/.stage-debootstrap"
rm -rf "$root"
mv "$build" "$root"
log "built: $root"
printf '%s\n' "$root"
