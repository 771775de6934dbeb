"""Can this interpreter run the shim? Checked before anything imports uvicorn-based modules.

The arbiter runs the app's own interpreter (``--python``), so the usual mistake is a venv without
uvicorn, or with one too old for the hooks the shim subclasses. The answer names the interpreter and
the exact command that fixes it; the shim then exits 4 and the arbiter reports a configuration error.

The supported range is [MINIMUM_UVICORN, UVICORN_TESTED_BELOW) (docs/worker-channel.md, "uvicorn
versions"); worker-shim/pyproject.toml and the root pyproject.toml declare the same bound, and
tests/requirements-lowest.txt pins the minimum so the suite runs against both ends. A uvicorn
newer than the range only gets a warning: the self-check (uvicorn_contract.py) is what catches a
newer release that actually breaks the shim, and refusing every newer release would turn a routine
upgrade of the app's venv into an outage at the next restart.
"""

from __future__ import annotations

import importlib.util
import re
import sys

from arbiter_worker.cli import Options

MINIMUM_UVICORN = (0, 36, 0)
"""Config.get_loop_factory() (replacing setup_event_loop) appeared in uvicorn 0.36.0; tested: 0.35.0
workers crash at start with AttributeError."""

UVICORN_TESTED_BELOW = (0, 56)
"""The first uvicorn release this shim has not been tested with (the latest tested is 0.55.x)."""


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def supported_range() -> tuple[str, str]:
    """(lowest supported, first unsupported) uvicorn versions, as pip writes them."""
    return _dotted(MINIMUM_UVICORN), _dotted(UVICORN_TESTED_BELOW)


def _install_hint(requirement: str) -> str:
    return f"fix: {sys.executable} -m pip install '{requirement}'"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def uvicorn_problem() -> str | None:
    """None if a usable uvicorn is importable, else a message saying what is wrong and how to fix it."""
    low, high = supported_range()
    try:
        import uvicorn
    except ImportError as exc:
        return (
            f"arbiter_worker: cannot import uvicorn with {sys.executable} ({exc}).\n"
            f"The app's interpreter needs uvicorn >={low},<{high}; {_install_hint('uvicorn[standard]')}"
        )
    version = getattr(uvicorn, "__version__", "0")
    if _version_tuple(version) < MINIMUM_UVICORN:
        return (
            f"arbiter_worker: uvicorn {version} at {uvicorn.__file__} is too old; arbiter needs >={low},<{high}.\n"
            f"{_install_hint(f'uvicorn[standard]>={low},<{high}')}"
        )
    return None


def uvicorn_warning() -> str | None:
    """A warning when the (importable, new enough) uvicorn is newer than any this shim was tested with."""
    import uvicorn

    version = getattr(uvicorn, "__version__", "0")
    if _version_tuple(version) < UVICORN_TESTED_BELOW:
        return None
    low, high = supported_range()
    return (
        f"arbiter_worker: warning: uvicorn {version} is newer than this arbiter was tested with "
        f"(>={low},<{high}). Every uvicorn internal the shim relies on is present, so it serves; if "
        f"drains misbehave, upgrade arbiter or pin uvicorn: {sys.executable} -m pip install "
        f"'uvicorn[standard]>={low},<{high}'"
    )


def library_problem(option: str, value: str, module: str, requirement: str) -> str | None:
    """None if `module` (needed by `--option value`) is importable, else how to install it."""
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"arbiter_worker: {option} {value} needs the '{module}' package, missing from {sys.executable}.\n"
        f"{_install_hint(requirement)}"
    )


def missing_library(options: Options) -> str | None:
    """The first library the chosen --loop/--http/--ws needs that is not installed, as a fix message."""
    checks = [
        ("--loop", options.loop, "uvloop", "uvloop", options.loop == "uvloop"),
        ("--http", options.http, "httptools", "httptools", options.http == "httptools"),
        ("--http", options.http, "h11", "h11", options.http == "h11"),
        ("--ws", options.ws, "websockets", "websockets", options.ws in ("websockets", "websockets-sansio")),
        ("--ws", options.ws, "wsproto", "wsproto", options.ws == "wsproto"),
    ]
    for option, value, module, requirement, needed in checks:
        problem = library_problem(option, value, module, requirement) if needed else None
        if problem is not None:
            return problem
    return None
