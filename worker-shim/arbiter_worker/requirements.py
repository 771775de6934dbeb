"""Can this interpreter run the shim? Checked before anything imports uvicorn.

The arbiter runs the app's own interpreter (``--python``), so the usual mistake is a venv without
uvicorn, or with one too old for the hooks the shim subclasses. The answer names the interpreter and
the exact command that fixes it; the shim then exits 4 and the arbiter reports a configuration error.
"""

from __future__ import annotations

import importlib.util
import re
import sys

MINIMUM_UVICORN = (0, 36, 0)
"""Config.get_loop_factory() (replacing setup_event_loop) appeared in uvicorn 0.36.0."""


def _install_hint(requirement: str) -> str:
    return f"fix: {sys.executable} -m pip install '{requirement}'"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def uvicorn_problem() -> str | None:
    """None if a usable uvicorn is importable, else a message saying what is wrong and how to fix it."""
    minimum = ".".join(map(str, MINIMUM_UVICORN))
    try:
        import uvicorn
    except ImportError as exc:
        return (
            f"arbiter_worker: cannot import uvicorn with {sys.executable} ({exc}).\n"
            f"The app's interpreter needs uvicorn >= {minimum}; {_install_hint('uvicorn[standard]')}"
        )
    version = getattr(uvicorn, "__version__", "0")
    if _version_tuple(version) < MINIMUM_UVICORN:
        return (
            f"arbiter_worker: uvicorn {version} at {uvicorn.__file__} is too old; arbiter needs >= {minimum}.\n"
            f"{_install_hint(f'uvicorn[standard]>={minimum}')}"
        )
    return None


def library_problem(option: str, value: str, module: str, requirement: str) -> str | None:
    """None if `module` (needed by `--option value`) is importable, else how to install it."""
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"arbiter_worker: {option} {value} needs the '{module}' package, missing from {sys.executable}.\n"
        f"{_install_hint(requirement)}"
    )
