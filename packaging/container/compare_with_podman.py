#!/usr/bin/python3
"""Cross-check rootfs.py against a real OCI builder: build packaging/container/Containerfile with
`podman build` and compare its root filesystem, file by file, with the one rootfs.py built.

    packaging/container/compare_with_podman.py     # exit 0: the same tree; else the differences

Podman builds here with --isolation=chroot (its RUN steps need no OCI runtime, which is what fails
on these machines), from the same FROM root: rootfs.py's debootstrapped debian:12-slim, imported
as localhost/debian:12-slim, because no container registry is reachable. Its storage is private
(.cache/podman/). RUN steps get the host network, and the host's pip configuration and CA bundle
mounted, as rootfs.py gives them. Compared: every path, its type, mode, owner, size, link target
and content (sha256). Expected to differ and left out: .pyc files (they embed the time pip
compiled them), apt's and dpkg's logs and caches, and the empty mount points each tool leaves
(/etc/hosts, /etc/pip.conf and /run/host-ca.crt from podman's RUN mounts, /var/log/journal from nspawn's).
Needs root; installs podman with apt if it is missing (scripts/lib.sh).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STORAGE = REPO / ".cache" / "podman"
PODMAN = ["podman", "--root", str(STORAGE / "storage"), "--runroot", str(STORAGE / "run")]
IGNORED = re.compile(r"(\.pyc$|^var/log/|^var/cache/(apt|ldconfig|debconf)/|^etc/hosts$|^etc/pip\.conf$|^run/host-ca\.crt$)")


def tree(root: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if IGNORED.search(relative):
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                what = f"link -> {os.readlink(path)}"
            elif stat.S_ISREG(info.st_mode):
                what = f"file {info.st_size} {hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
            else:
                what = "dir" if stat.S_ISDIR(info.st_mode) else "other"
            entries[relative] = f"{what} {oct(info.st_mode & 0o7777)} {info.st_uid}:{info.st_gid}"
    return entries


def run(command: list[str], **kwargs: object) -> str:
    return subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE, **kwargs).stdout.strip()  # type: ignore[call-overload, no-any-return]


def main() -> int:
    subprocess.run(["bash", "-c", f"source {REPO}/scripts/lib.sh && ensure_apt_packages podman"], check=True)
    base = Path(run([sys.executable, str(HERE / "rootfs.py"), "base"]))
    image = Path(run([sys.executable, str(HERE / "rootfs.py"), "build"]))
    # Imported once per base snapshot (named by its key), so podman's layer cache stays valid.
    imported = f"localhost/arbiter-base:{base.name}"
    if subprocess.run([*PODMAN, "image", "exists", imported]).returncode != 0:
        print(f"compare: importing {base} as {imported}", file=sys.stderr)
        tar = subprocess.Popen(["tar", "-C", str(base), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([*PODMAN, "import", "-", imported], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.wait()
    subprocess.run([*PODMAN, "tag", imported, "localhost/debian:12-slim"], check=True)
    # pip in RUN steps: this machine's pip settings, with its CA bundle (not over the image's own
    # /etc/ssl/certs, which ca-certificates' postinst rewrites).
    pip = configparser.ConfigParser()
    pip.read("/etc/pip.conf")
    if not pip.has_section("global"):
        pip.add_section("global")
    mounts = []
    host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if host_ca.is_file():
        pip.set("global", "cert", "/run/host-ca.crt")
        mounts += ["-v", f"{host_ca}:/run/host-ca.crt:ro"]
    STORAGE.mkdir(parents=True, exist_ok=True)
    with open(STORAGE / "pip.conf", "w") as generated:
        pip.write(generated)
    mounts += ["-v", f"{STORAGE / 'pip.conf'}:/etc/pip.conf:ro"]
    print("compare: podman build --isolation=chroot (cached in .cache/podman)", file=sys.stderr)
    subprocess.run([*PODMAN, "build", "--isolation=chroot", "--pull=never", "--network=host", "--format=docker",
                    *mounts, "-f", str(HERE / "Containerfile"), "-t", "localhost/arbiter-app", str(REPO)],
                   check=True, stdout=sys.stderr)
    mounted = Path(run([*PODMAN, "image", "mount", "localhost/arbiter-app"]))
    try:
        ours, theirs = tree((image / "rootfs").resolve()), tree(mounted)
    finally:
        subprocess.run([*PODMAN, "image", "unmount", "localhost/arbiter-app"], check=True, stdout=subprocess.DEVNULL)
    differences = sorted(path for path in ours.keys() | theirs.keys() if ours.get(path) != theirs.get(path))
    # The image configuration: what `podman run` would do with the tree.
    inspected = json.loads(run([*PODMAN, "image", "inspect", "localhost/arbiter-app"]))[0]
    config = json.loads((image / "config.json").read_text())
    podman_config = inspected["Config"]
    expected = {
        "User": config["user"], "WorkingDir": config["workdir"], "Entrypoint": config["entrypoint"],
        "Cmd": config["cmd"], "StopSignal": config["stopsignal"],
        "Env": [f"{key}={value}" for key, value in config["env"].items()],
        "ExposedPorts": sorted(f"{port}/tcp" for port in config["expose"]),
        "Healthcheck": ["CMD", *config["healthcheck"]["test"]],
    }
    actual = {**{key: podman_config.get(key) for key in expected},
              "Env": sorted(podman_config.get("Env", [])),
              "ExposedPorts": sorted(podman_config.get("ExposedPorts", {})),
              "Healthcheck": (inspected.get("Healthcheck") or {}).get("Test")}
    expected["Env"] = sorted(expected["Env"])
    for key in expected:
        if expected[key] != actual[key]:
            differences.append(f"image config {key}")
            print(f"image config {key}\n  rootfs.py: {expected[key]}\n  podman:    {actual[key]}")
    for path in differences[:50]:
        print(f"{path}\n  rootfs.py: {ours.get(path, 'missing')}\n  podman:    {theirs.get(path, 'missing')}")
    print(f"compare: {len(ours)} entries from rootfs.py, {len(theirs)} from podman build, "
          f"{len(differences)} different (.pyc, apt/dpkg logs and caches, mount points left out); image "
          f"configuration (user, workdir, entrypoint, cmd, env, ports, stop signal, health check) compared")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
