# Shared by demo.sh and test.sh: install what is missing, and nothing else, so running either
# script twice does the work once. Sourced, not executed.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
SYSTEM_PYTHON=/usr/bin/python3   # Debian 12's python3 (3.11): what production venvs use
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a command as root: directly when we are root, else through sudo (never prompting under CI).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ "${CI:-}" = true ]; then sudo -n "$@"; else sudo "$@"; fi
    else
        die "need root to run '$*': run this script as root, or install sudo"
    fi
}

# apt-get install the packages that are not installed yet; apt-get update only if some are missing.
ensure_apt_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages: all present ($*)"
        return 0
    fi
    log "apt packages: installing ${missing[*]}"
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ensure_venv REQUIREMENTS [VENV_DIR]: create the venv (default .venv) with the system Python if
# needed, then pip install a requirements file unless this exact file was already installed into
# this venv (a checksum stamp inside the venv remembers).
ensure_venv() {
    local requirements="$1" venv="${2:-$VENV}" stamp sum
    [ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON not found (apt-get install python3)"
    if [ ! -x "$venv/bin/python" ]; then
        log "venv: creating $venv with $SYSTEM_PYTHON"
        "$SYSTEM_PYTHON" -m venv "$venv" || return 1
    fi
    sum="$(sha256sum "$requirements" | cut -d' ' -f1)"
    stamp="$venv/.installed-$(basename "$(dirname "$requirements")")-$(basename "$requirements" .txt).sha256"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
        log "venv: ${requirements#"$REPO"/} already installed in ${venv#"$REPO"/}"
        return 0
    fi
    log "venv: pip install -r ${requirements#"$REPO"/} into ${venv#"$REPO"/}"
    "$venv/bin/python" -m pip install -q -r "$requirements" || return 1
    printf '%s\n' "$sum" > "$stamp"
}

# Configure (first time) and build one CMake build directory: build_tree DIR [cmake -D options...]
build_tree() {
    local dir="$1"; shift
    cmake -S "$REPO" -B "$REPO/$dir" "$@" >/dev/null
    cmake --build "$REPO/$dir" -j "$(nproc)"
}

# What building the arbiter needs on Debian 12.
BUILD_PACKAGES=(build-essential cmake pkg-config libuv1-dev libjansson-dev check python3 python3-venv)
