# Shared by demo.sh and test.sh: install what is missing, and nothing else, so running either
# script twice does the work once. Sourced, not executed.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
SYSTEM_PYTHON=/usr/bin/python3   # Debian 12's python3 (3.11): what production venvs use
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a command as root: directly when we are root, else through sudo (never prompting under CI).
# sudo resets the environment: the variables that steer the tests (ARBITER_*, CI, FUZZ_*,
# PYTEST_ARGS) and pip's configuration (PIP_*) are passed on explicitly.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        local keep=() name
        for name in $(compgen -e); do
            case "$name" in
                ARBITER_*|PIP_*|FUZZ_*|CI|PYTEST_ARGS) keep+=("$name=${!name}") ;;
            esac
        done
        if [ "${CI:-}" = true ]; then sudo -n env "${keep[@]}" "$@"; else sudo env "${keep[@]}" "$@"; fi
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
        "$SYSTEM_PYTHON" -m venv "$venv" || { log "venv: cannot create $venv"; return 1; }
    fi
    sum="$(sha256sum "$requirements" | cut -d' ' -f1)"
    stamp="$venv/.installed-$(basename "$(dirname "$requirements")")-$(basename "$requirements" .txt).sha256"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
        log "venv: ${requirements#"$REPO"/} already installed in ${venv#"$REPO"/}"
        return 0
    fi
    log "venv: pip install -r ${requirements#"$REPO"/} into ${venv#"$REPO"/}"
    "$venv/bin/python" -m pip install -q -r "$requirements" \
        || { log "venv: pip install -r ${requirements#"$REPO"/} failed (pip's reason above)"; return 1; }
    printf '%s\n' "$sum" > "$stamp"
}

# Configure (first time) and build one CMake build directory: build_tree DIR [cmake -D options...]
# These are development builds (test.sh, demo.sh): warnings are errors here, and only here.
build_tree() {
    local dir="$1"; shift
    cmake -S "$REPO" -B "$REPO/$dir" -DARBITER_WERROR=ON "$@" >/dev/null
    cmake --build "$REPO/$dir" -j "$(nproc)"
}

# What building the arbiter needs on Debian 12.
BUILD_PACKAGES=(build-essential cmake pkg-config libuv1-dev libjansson-dev check python3 python3-venv)

# ---- the machine's package configuration, for the Debian roots the tests build (e2e, pristine) ----
# Package sources come from this machine's configuration only: no mirror or index is named here.

APT_SOURCE_FILES_GLOB='/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources'

# apt_debian_mirror SUITE: print the URI of the first enabled apt source ("deb", one-line or deb822
# format) that carries SUITE itself (bookworm, not bookworm-updates); status 1 if there is none.
apt_debian_mirror() {
    local suite="$1" file mirror
    mirror="$(
        for file in $APT_SOURCE_FILES_GLOB; do
            [ -f "$file" ] || continue
            case "$file" in
                *.sources) awk -v suite="$suite" '
                    function flush(   count, i, names, uris) {
                        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
                            count = split(suites, names, " ")
                            split(locations, uris, " ")
                            for (i = 1; i <= count; i++) if (names[i] == suite) { print uris[1]; break }
                        }
                        types = locations = suites = field = ""; enabled = "yes"
                    }
                    BEGIN { enabled = "yes" }
                    /^[ \t]*#/ { next }
                    /^[ \t]*$/ { flush(); next }
                    /^[ \t]/ { if (field == "uris") locations = locations " " $0; else if (field == "suites") suites = suites " " $0; next }
                    {
                        field = tolower($1); sub(/:$/, "", field)
                        value = $0; sub(/^[^:]*:[ \t]*/, "", value)
                        if (field == "types") types = value
                        else if (field == "uris") locations = value
                        else if (field == "suites") suites = value
                        else if (field == "enabled") enabled = tolower(value)
                    }
                    END { flush() }' "$file" ;;
                *) sed -e 's/#.*//' "$file" | awk -v suite="$suite" '
                    $1 == "deb" {
                        i = 2
                        if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                        if ($(i + 1) == suite) print $i
                    }' ;;
            esac
        done | head -n1
    )"
    [ -n "$mirror" ] || return 1
    printf '%s\n' "$mirror"
}

# copy_apt_configuration ROOT: give a debootstrapped ROOT this machine's apt sources, the keys they
# name, and its Acquire:: settings (proxy, validity checks), instead of debootstrap's one-line list.
copy_apt_configuration() {
    local root="$1" file keyring
    rm -f "$root/etc/apt/sources.list"
    mkdir -p "$root/etc/apt/sources.list.d" "$root/etc/apt/apt.conf.d" "$root/etc/apt/trusted.gpg.d" "$root/etc/apt/keyrings"
    for file in $APT_SOURCE_FILES_GLOB; do
        [ -f "$file" ] || continue
        cp "$file" "$root$file"
        # Keys a source names with signed-by= / Signed-By: (when it is a path the root lacks).
        for keyring in $(grep -hoiE '(signed-by=|^Signed-By:[[:space:]]*)/[^] ,]+' "$file" | sed -E 's/^[^/]*//'); do
            [ -f "$keyring" ] && [ ! -e "$root$keyring" ] && install -D -m 644 "$keyring" "$root$keyring"
        done
    done
    for file in /etc/apt/trusted.gpg.d/* /etc/apt/keyrings/*; do
        [ -f "$file" ] && cp "$file" "$root$file"
    done
    for file in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
        [ -f "$file" ] && grep -qE '^[[:space:]]*Acquire' "$file" && cp "$file" "$root$file"
    done
    return 0
}

# pip_configuration_into ROOT: make pip inside ROOT use this machine's pip configuration. Its
# configuration files (/etc/pip.conf, /etc/xdg/pip/pip.conf, the user's, $PIP_CONFIG_FILE) are copied
# in, its PIP_* variables become NSPAWN_PIP_ARGS (--setenv options for systemd-nspawn), and the local
# paths they name (a CA bundle, a find-links directory) are made available under /etc/arbiter-host-pip
# (files copied, directories bound read-only), with the references rewritten to match: a CA bundle at
# its host path would be replaced when Debian's ca-certificates is installed inside.
pip_configuration_into() {
    local root="$1" line
    NSPAWN_PIP_ARGS=()
    local output
    output="$("$SYSTEM_PYTHON" - "$root" "${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" "$HOME/.pip/pip.conf" <<'PYTHON'
import os, re, shutil, sys

root, user_config, legacy_user_config = sys.argv[1:]
MAPPED = "/etc/arbiter-host-pip"
configs = [(path, path) for path in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf")]
configs += [(user_config, "/root/.config/pip/pip.conf"), (legacy_user_config, "/root/.pip/pip.conf")]
if os.environ.get("PIP_CONFIG_FILE"):
    configs.append((os.environ["PIP_CONFIG_FILE"], os.environ["PIP_CONFIG_FILE"]))
texts = {inside: open(host).read() for host, inside in configs if os.path.isfile(host)}
variables = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}

# An absolute path, alone or as a file:// URL, that exists here: made available under MAPPED.
PATH = re.compile(r"(?<![\w/:.])(file://)?(/[^\s,;\"']+)")
binds = set()

def rewrite(text):
    def one(match):
        path = match.group(2)
        if os.path.isfile(path):
            target = root + MAPPED + path
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
        elif os.path.isdir(path) and path != "/":
            binds.add(path)
        else:
            return match.group(0)
        return (match.group(1) or "") + MAPPED + path
    return PATH.sub(one, text)

for inside, text in texts.items():
    target = root + inside
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as file:
        file.write(rewrite(text))
for name, value in sorted(variables.items()):
    print(f"--setenv={name}={rewrite(value)}")
for path in sorted(binds):
    print(f"--bind-ro={path}:{MAPPED}{path}")
PYTHON
)" || return 1
    while IFS= read -r line; do
        [ -z "$line" ] || NSPAWN_PIP_ARGS+=("$line")
    done <<< "$output"
}
