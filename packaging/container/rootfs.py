#!/usr/bin/python3
"""Build the image of packaging/container/Containerfile as a plain root filesystem, and run it with
systemd-nspawn, where no OCI runtime works (podman installs on this project's machines but cannot
run containers: its cgroup setup fails).

    packaging/container/rootfs.py build            # prints the image directory: rootfs/ + config.json
    packaging/container/rootfs.py base             # prints the FROM debian:12-slim root it starts from
    packaging/container/rootfs.py run [--network host|private] [--bind-ro SRC:DST] [--setenv K=V]
                                      [-- ARGS...]  # ENTRYPOINT + (ARGS or CMD), arbiter as PID 1

The build follows the Containerfile itself, so the two cannot drift apart: it parses it and
executes every instruction in order, as `podman build` would. FROM debian:12-slim is
`debootstrap --variant=minbase bookworm`, slimmed as the official slim image is (no docs, man
pages or locales), from the Debian mirror this machine's apt uses (read from /etc/apt/sources.list
and sources.list.d; nothing is hard-wired). RUN runs in the root with systemd-nspawn (host
network, so apt and pip reach the same package sources as the host, with the host's CA bundle for
pip). COPY copies from the build context (honouring .dockerignore) or from an earlier stage, owned
by root unless --chown. ENV, WORKDIR and USER apply to the following steps and to the image; EXPOSE,
STOPSIGNAL, HEALTHCHECK, ENTRYPOINT and CMD are recorded in config.json. Anything else (ARG, ADD,
VOLUME, ONBUILD, ...) is refused with the line number: add it here first.

Caching, under .cache/container/ (or $ARBITER_CONTAINER_CACHE): like image layers, every step has
a key (the previous key, the instruction, the content of what it copies); the root after each RUN
and at the end of each stage is kept under its key, so a build restarts from the last step whose
key is unchanged (editing the C code rebuilds from the COPY of the sources on). Snapshots that the
current Containerfile no longer reaches are deleted after a build.

`run` starts `systemd-nspawn` WITHOUT --boot and without --as-pid2: the ENTRYPOINT is the
container's PID 1, as under docker or podman. --volatile=overlay gives it a throwaway writable
layer over the cached root; --kill-signal is the image's STOPSIGNAL, so SIGTERM to this command
is `docker stop`. Needs root, debootstrap and systemd-container.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "packaging" / "container" / "Containerfile"
CACHE = Path(os.environ.get("ARBITER_CONTAINER_CACHE", REPO / ".cache" / "container"))
# Bump when a change to this builder must invalidate cached snapshots.
BUILDER_VERSION = "1"
BASE_IMAGES = {"debian:12-slim": "bookworm", "debian:bookworm-slim": "bookworm"}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
# What debuerreotype does to make the official -slim images (dpkg path excludes, then the files).
SLIM_DPKG_CFG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
"""
PASSED_PIP_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT")


class BuildError(Exception):
    """A problem the user can fix; the message says what and how."""


def log(message: str) -> None:
    print(f"rootfs: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The Containerfile


@dataclass
class Instruction:
    line: int
    keyword: str
    arguments: str

    def text(self) -> str:
        return f"{self.keyword} {self.arguments}"


@dataclass
class Stage:
    base: str
    name: Optional[str]
    steps: list[Instruction] = field(default_factory=list)


def parse_containerfile(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped, as buildah does
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        instruction = Instruction(start, keyword.upper(), arguments.strip())
        logical = ""
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            if len(words) == 3 and words[1].upper() == "AS":
                stages.append(Stage(words[0], words[2]))
            elif len(words) == 1:
                stages.append(Stage(words[0], None))
            else:
                raise BuildError(f"{path}:{start}: FROM takes IMAGE [AS NAME]")
        elif not stages:
            raise BuildError(f"{path}:{start}: {instruction.keyword} before the first FROM")
        else:
            stages[-1].steps.append(instruction)
    if logical:
        raise BuildError(f"{path}: the last instruction ends with a line continuation")
    if not stages:
        raise BuildError(f"{path}: no FROM line")
    return stages


def exec_form(instruction: Instruction) -> list[str]:
    """ENTRYPOINT, CMD, RUN: a JSON array, or shell form run by /bin/sh -c."""
    if instruction.arguments.startswith("["):
        try:
            value = json.loads(instruction.arguments)
        except ValueError as error:
            raise BuildError(f"line {instruction.line}: {instruction.keyword} is not a valid JSON array: {error}") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise BuildError(f"line {instruction.line}: {instruction.keyword} must be a JSON array of strings")
        return value
    return ["/bin/sh", "-c", instruction.arguments]


def substitute(text: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} from the stage's ENV (what buildah substitutes in ENV, WORKDIR, COPY, USER)."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), text)


def parse_env(instruction: Instruction, env: dict[str, str]) -> dict[str, str]:
    words = shlex.split(instruction.arguments)
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return {words[0]: substitute(instruction.arguments.split(None, 1)[1], env)}
    values: dict[str, str] = {}
    for word in words:
        key, separator, value = word.partition("=")
        if not separator:
            raise BuildError(f"line {instruction.line}: ENV {word!r} is not KEY=VALUE")
        values[key] = substitute(value, {**env, **values})
    return values


# --------------------------------------------------------------------------------------------------
# Debian sources: the ones this machine's apt uses


@dataclass
class AptSource:
    uri: str
    suites: list[str]
    components: list[str]


def host_apt_sources(suite: str) -> list[AptSource]:
    """The enabled `deb` entries of /etc/apt for SUITE and its -updates and -security suites."""
    found: list[AptSource] = []
    apt = Path("/etc/apt")
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in paragraph.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            found += [AptSource(uri, fields.get("suites", "").split(), fields.get("components", "main").split())
                      for uri in fields.get("uris", "").split()]
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append(AptSource(words[1], [words[2]], words[3:] or ["main"]))
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    return [AptSource(s.uri, [x for x in s.suites if x in wanted], s.components)
            for s in found if any(x in wanted for x in s.suites)]


def sources_file(sources: list[AptSource]) -> str:
    return "\n".join(
        f"Types: deb\nURIs: {s.uri}\nSuites: {' '.join(s.suites)}\nComponents: {' '.join(s.components)}\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" for s in sources)


# --------------------------------------------------------------------------------------------------
# Snapshots and keys


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def snapshot_path(key: str) -> Path:
    return CACHE / "layers" / key


def have_snapshot(key: str) -> bool:
    return (CACHE / "layers" / f"{key}.done").exists()


def copy_tree(source: Path, target: Path) -> None:
    """cp -a: a root holds device nodes, hard links, setuid bits and xattrs that must survive."""
    subprocess.run(["cp", "-a", "--reflink=auto", f"{source}/.", str(target)], check=True)


def save_snapshot(work: Path, key: str) -> None:
    final = snapshot_path(key)
    if have_snapshot(key):
        return
    partial = final.with_name(f"{key}.partial")
    remove_tree(partial)
    remove_tree(final)
    partial.mkdir(parents=True)
    copy_tree(work, partial)
    partial.rename(final)
    (CACHE / "layers" / f"{key}.done").touch()


def remove_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


class Ignore:
    """.dockerignore of the context: one pattern a line; `**/x` matches x at any depth."""

    def __init__(self, context: Path) -> None:
        path = context / ".dockerignore"
        self.patterns = [line.strip().rstrip("/") for line in path.read_text().splitlines()
                         if line.strip() and not line.startswith("#")] if path.exists() else []

    def ignored(self, relative: str) -> bool:
        for pattern in self.patterns:
            if fnmatch.fnmatch(relative, pattern) or (pattern.startswith("**/") and (
                    fnmatch.fnmatch(relative, pattern[3:]) or fnmatch.fnmatch(relative, "*/" + pattern[3:]))):
                return True
        return False


def context_files(context: Path, source: str, ignore: Ignore) -> list[Path]:
    root = (context / source).resolve()
    if not str(root).startswith(str(context.resolve())):
        raise BuildError(f"COPY {source}: outside the build context {context}")
    if not root.exists():
        raise BuildError(f"COPY {source}: no such file in the build context {context}")
    if root.is_file():
        return [root]
    files = []
    for directory, names, filenames in os.walk(root):
        relative_dir = os.path.relpath(directory, context)
        names[:] = sorted(n for n in names if not ignore.ignored(os.path.join(relative_dir, n)))
        files += [Path(directory, f) for f in sorted(filenames) if not ignore.ignored(os.path.join(relative_dir, f))]
    return files


def content_digest(context: Path, sources: list[str], ignore: Ignore) -> str:
    hashed = hashlib.sha256()
    for source in sources:
        for path in context_files(context, source, ignore):
            hashed.update(f"{path.relative_to(context)}\0{path.stat().st_mode & 0o777}\0".encode())
            hashed.update(path.read_bytes())
    return hashed.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# The build


@dataclass
class Image:
    """What a stage leaves behind: its root's snapshot key and its configuration."""
    key: str
    env: dict[str, str]
    user: str = "root"
    workdir: str = "/"
    config: dict[str, object] = field(default_factory=dict)


def nspawn_base(root: Path) -> list[str]:
    return ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=pipe", "-D", str(root)]


def build_base(suite: str, mirror: Optional[str]) -> str:
    sources = host_apt_sources(suite)
    if mirror:
        sources = [AptSource(mirror, [suite], ["main"])] + [s for s in sources if suite not in s.suites]
    primary = next((s.uri for s in sources if suite in s.suites), None)
    if primary is None:
        raise BuildError(f"no enabled `deb` entry for Debian {suite} in /etc/apt/sources.list or "
                         f"/etc/apt/sources.list.d/: add one (as for apt itself), or pass --mirror URL")
    key = digest(BUILDER_VERSION, "base", suite, sources_file(sources), SLIM_DPKG_CFG)
    if have_snapshot(key):
        return key
    for tool in ("debootstrap", "systemd-nspawn"):
        if not shutil.which(tool):
            raise BuildError(f"{tool} not found: apt-get install debootstrap systemd-container (scripts/test.sh does)")
    work = CACHE / "work-base"
    remove_tree(work)
    work.mkdir(parents=True)
    log(f"debootstrap --variant=minbase {suite} from {primary} (a few minutes; cached afterwards)")
    result = subprocess.run(["debootstrap", "--variant=minbase", suite, str(work), primary],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise BuildError(f"debootstrap failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
    (work / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (work / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG_CFG)
    for pattern in ("usr/share/doc/*/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
                    "usr/share/groff/*", "usr/share/lintian/overrides/*", "var/cache/apt/*.bin",
                    "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log"):
        for path in work.glob(pattern):
            if path.name not in ("copyright", "locale.alias", "partial", "lock"):
                remove_tree(path)
    (work / "etc/apt/sources.list").unlink(missing_ok=True)
    (work / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (work / "etc/apt/sources.list.d/debian.sources").write_text(sources_file(sources))
    (work / "etc/hostname").write_text("arbiter\n")
    save_snapshot(work, key)
    remove_tree(work)
    return key


def resolve_owner(root: Path, spec: str) -> tuple[int, int]:
    """USER or USER:GROUP (names or numbers), looked up in the root's own passwd and group."""
    user, _, group = spec.partition(":")
    def lookup(path: str, name: str, what: str) -> tuple[int, int]:
        if name.isdigit():
            return int(name), int(name)
        for line in (root / path).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3]) if what == "user" else int(fields[2])
        raise BuildError(f"--chown {spec}: no {what} {name!r} in the image (create it with a RUN before)")
    uid, primary_gid = lookup("etc/passwd", user, "user")
    return uid, lookup("etc/group", group, "group")[0] if group else primary_gid


def run_step(root: Path, argv: list[str], image: Image) -> None:
    options = [f"--chdir={image.workdir}", f"--setenv=PATH={image.env.get('PATH', DEFAULT_PATH)}"]
    options += [f"--setenv={k}={v}" for k, v in image.env.items() if k != "PATH"]
    if image.user != "root":
        options.append(f"--user={image.user}")
    if HOST_CA.is_file():  # pip behind this machine's TLS-inspecting egress needs its CA
        options += [f"--bind-ro={HOST_CA}:/run/host-ca.crt", "--setenv=PIP_CERT=/run/host-ca.crt"]
    options += [f"--setenv={name}={os.environ[name]}" for name in PASSED_PIP_VARIABLES if name in os.environ]
    options.append("--setenv=DEBIAN_FRONTEND=noninteractive")
    # The step's output is progress, on stderr: stdout carries only the image directory.
    result = subprocess.run([*nspawn_base(root), *options, "--", *argv], stdin=subprocess.DEVNULL, stdout=sys.stderr)
    if result.returncode != 0:
        raise BuildError(f"RUN {shlex.join(argv)} exited {result.returncode}")


def copy_step(root: Path, instruction: Instruction, image: Image, context: Path, ignore: Ignore,
              stages: dict[str, Image]) -> None:
    words = shlex.split(substitute(instruction.arguments, image.env))
    from_stage, owner = None, "0:0"
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0).partition("=")
        if flag == "--from":
            from_stage = value
        elif flag == "--chown":
            owner = value
        else:
            raise BuildError(f"line {instruction.line}: COPY {flag} is not supported (--from, --chown are)")
    if len(words) < 2:
        raise BuildError(f"line {instruction.line}: COPY needs a source and a destination")
    *sources, destination = words
    target = root / (Path(image.workdir) / destination).relative_to("/")
    uid, gid = resolve_owner(root, owner)
    for source in sources:
        if from_stage is not None:
            origin = snapshot_path(stages[from_stage].key) / source.lstrip("/")
            files_root, files = origin, None
        else:
            origin = context / source
            files_root, files = origin, context_files(context, source, ignore)
        if not origin.exists():
            raise BuildError(f"line {instruction.line}: COPY {source}: not found")
        into = target / origin.name if destination.endswith("/") and origin.is_file() else target
        if origin.is_file():
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, into)
            os.chown(into, uid, gid)
            continue
        into.mkdir(parents=True, exist_ok=True)
        if files is None:
            copy_tree(origin, into)
            subprocess.run(["chown", "-R", f"{uid}:{gid}", str(into)], check=True)
            continue
        for path in files:
            destination_path = into / path.relative_to(files_root)
            destination_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination_path)
            os.chown(destination_path, uid, gid)
        for directory, _, _ in os.walk(into):
            os.chown(directory, uid, gid)


def stage_keys(stage: Stage, base_key: str, stages: dict[str, Image], context: Path, ignore: Ignore) -> list[str]:
    keys, key = [], base_key
    for step in stage.steps:
        extra = ""
        if step.keyword == "COPY":
            words = shlex.split(step.arguments)
            from_stage = next((w.partition("=")[2] for w in words if w.startswith("--from=")), None)
            sources = [w for w in words if not w.startswith("--")][:-1]
            if from_stage is not None:
                if from_stage not in stages:
                    raise BuildError(f"line {step.line}: COPY --from={from_stage}: no earlier stage of that name")
                extra = stages[from_stage].key
            else:
                extra = content_digest(context, sources, ignore)
        key = digest(key, step.text(), extra)
        keys.append(key)
    return keys


SUPPORTED = {"RUN", "COPY", "ENV", "WORKDIR", "USER", "EXPOSE", "STOPSIGNAL", "HEALTHCHECK", "ENTRYPOINT",
             "CMD", "LABEL"}


def build_stage(stage: Stage, stages: dict[str, Image], context: Path, ignore: Ignore, mirror: Optional[str]) -> Image:
    for step in stage.steps:
        if step.keyword not in SUPPORTED:
            raise BuildError(f"line {step.line}: {step.keyword} is not supported by rootfs.py "
                             f"(it runs {', '.join(sorted(SUPPORTED))}); add it there before using it")
    if stage.base in stages:
        parent = stages[stage.base]
        image = Image(parent.key, dict(parent.env), parent.user, parent.workdir, dict(parent.config))
    elif stage.base in BASE_IMAGES:
        image = Image(build_base(BASE_IMAGES[stage.base], mirror), {"PATH": DEFAULT_PATH})
    else:
        raise BuildError(f"FROM {stage.base}: rootfs.py builds from {', '.join(BASE_IMAGES)} or an earlier stage")
    keys = stage_keys(stage, image.key, stages, context, ignore)
    # The configuration steps are cheap and have no snapshot: replay them all; the root is taken
    # from the newest snapshot of this stage and only the steps after it touch the filesystem.
    resume = max((i for i, key in enumerate(keys) if have_snapshot(key)), default=-1)
    work = CACHE / f"work-{stage.name or 'final'}"
    work_ready = False
    for index, step in enumerate(stage.steps):
        if step.keyword in ("RUN", "COPY", "WORKDIR") and index > resume:
            if not work_ready:
                remove_tree(work)
                work.mkdir(parents=True)
                copy_tree(snapshot_path(keys[resume] if resume >= 0 else image.key), work)
                work_ready = True
            log(f"line {step.line}: {step.keyword} {step.arguments[:100]}")
            if step.keyword == "RUN":
                run_step(work, exec_form(step), image)
            elif step.keyword == "COPY":
                copy_step(work, step, image, context, ignore, stages)
            else:
                image.workdir = str(Path(image.workdir) / substitute(step.arguments, image.env))
                (work / image.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
            if step.keyword == "RUN":
                save_snapshot(work, keys[index])
        elif step.keyword == "ENV":
            image.env.update(parse_env(step, image.env))
        elif step.keyword == "WORKDIR":
            image.workdir = str(Path(image.workdir) / substitute(step.arguments, image.env))
        elif step.keyword == "USER":
            image.user = substitute(step.arguments, image.env)
        elif step.keyword in ("ENTRYPOINT", "CMD"):
            image.config[step.keyword.lower()] = exec_form(step)
        elif step.keyword == "STOPSIGNAL":
            image.config["stopsignal"] = step.arguments.strip()
        elif step.keyword == "EXPOSE":
            exposed = image.config.get("expose")
            image.config["expose"] = [*(exposed if isinstance(exposed, list) else []), *step.arguments.split()]
        elif step.keyword == "HEALTHCHECK":
            options, _, command = step.arguments.partition("CMD ")
            image.config["healthcheck"] = {
                "options": options.split(), "test": exec_form(Instruction(step.line, "HEALTHCHECK", command.strip()))}
    image.key = keys[-1] if keys else image.key
    if work_ready:
        save_snapshot(work, image.key)
        remove_tree(work)
    elif not have_snapshot(image.key):  # a stage of configuration steps only: the parent's root
        image.key = keys[resume] if resume >= 0 else image.key
    return image


def prune(keep: set[str]) -> None:
    layers = CACHE / "layers"
    for entry in layers.iterdir() if layers.exists() else []:
        key = entry.name.split(".")[0]
        if key not in keep:
            remove_tree(entry)


def build(containerfile: Path, context: Path, mirror: Optional[str]) -> Path:
    if os.geteuid() != 0:
        raise BuildError("rootfs.py build needs root (debootstrap, systemd-nspawn, chown)")
    stages_list = parse_containerfile(containerfile)
    ignore = Ignore(context)
    stages: dict[str, Image] = {}
    image = None
    keep: set[str] = set()
    for index, stage in enumerate(stages_list):
        image = build_stage(stage, stages, context, ignore, mirror)
        stages[stage.name or str(index)] = image
        keep.add(image.key)
    assert image is not None
    # Keep every snapshot of the current chain (so a later edit resumes from it), drop the rest.
    for index, stage in enumerate(stages_list):
        parent = stages.get(stage.base)
        base_key = parent.key if parent else build_base(BASE_IMAGES[stage.base], mirror)
        keep.add(base_key)
        keep.update(stage_keys(stage, base_key, stages, context, ignore))
    prune(keep)
    out = CACHE / "image"
    out.mkdir(parents=True, exist_ok=True)
    rootfs = out / "rootfs"
    if rootfs.is_symlink() or rootfs.exists():
        rootfs.unlink()
    rootfs.symlink_to(snapshot_path(image.key))
    config = {"key": image.key, "env": image.env, "user": image.user, "workdir": image.workdir, **image.config}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    log(f"image {image.key}: {out}")
    return out


# --------------------------------------------------------------------------------------------------
# Running


def run_command(image_dir: Path, arguments: list[str], network: str, binds: list[str], env: list[str]) -> list[str]:
    """The systemd-nspawn command line that runs the image as `docker run` would."""
    config = json.loads((image_dir / "config.json").read_text())
    root = (image_dir / "rootfs").resolve()
    command = [*config.get("entrypoint", []), *(arguments or config.get("cmd", []))]
    if not command:
        raise BuildError("the image has no ENTRYPOINT or CMD, and no command was given")
    options = [f"--chdir={config['workdir']}", f"--kill-signal={config.get('stopsignal', 'SIGTERM')}",
               "--volatile=overlay"]
    if config["user"] != "root":
        options.append(f"--user={config['user']}")
    # nspawn offers its payload a NOTIFY_SOCKET (root's, so the image's user cannot use it); an OCI
    # runtime offers none, and neither does this.
    options.append("--setenv=NOTIFY_SOCKET=")
    options += [f"--setenv={k}={v}" for k, v in config["env"].items()] + [f"--setenv={item}" for item in env]
    options += [f"--bind-ro={item}" for item in binds]
    if network == "private":
        options.append("--private-network")
    # No --boot and no --as-pid2: the command is the container's PID 1.
    return [*nspawn_base(root), *options, "--", *command]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_parser = sub.add_parser("build", help="build (or reuse) the image; print its directory")
    build_parser.add_argument("--containerfile", type=Path, default=CONTAINERFILE)
    build_parser.add_argument("--context", type=Path, default=REPO)
    build_parser.add_argument("--mirror", help="Debian mirror URL (default: the one in this machine's apt sources)")
    base_parser = sub.add_parser("base", help="build (or reuse) the FROM debian:12-slim root; print its directory")
    base_parser.add_argument("--mirror", help="Debian mirror URL (default: the one in this machine's apt sources)")
    run_parser = sub.add_parser("run", help="run the image's ENTRYPOINT as PID 1 with systemd-nspawn")
    run_parser.add_argument("--image", type=Path, default=CACHE / "image")
    run_parser.add_argument("--network", choices=("private", "host"), default="private",
                            help="private: the container's own network namespace (only its loopback); host: share this one")
    run_parser.add_argument("--bind-ro", action="append", default=[], metavar="SRC:DST")
    run_parser.add_argument("--setenv", action="append", default=[], metavar="K=V")
    run_parser.add_argument("--print", action="store_true", help="print the systemd-nspawn command instead of running it")
    run_parser.add_argument("arguments", nargs="*", help="replace CMD (flags and APP), as `docker run IMAGE ARGS`")
    options = parser.parse_args()
    try:
        if options.command == "build":
            print(build(options.containerfile.resolve(), options.context.resolve(), options.mirror))
            return 0
        if options.command == "base":
            print(snapshot_path(build_base(BASE_IMAGES["debian:12-slim"], options.mirror)))
            return 0
        if not (options.image / "config.json").exists():
            raise BuildError(f"no image in {options.image}: run `{sys.argv[0]} build` first")
        command = run_command(options.image, options.arguments, options.network, options.bind_ro, options.setenv)
        if options.print:
            print(shlex.join(command))
            return 0
        # SIGTERM/SIGINT go to nspawn, which passes --kill-signal to PID 1: `docker stop`.
        process = subprocess.Popen(command)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: process.send_signal(signal.SIGTERM))
        return process.wait()
    except BuildError as error:
        log(f"error: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
